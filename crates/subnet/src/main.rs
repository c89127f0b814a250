//! `subnet`: show how a mask cuts an address into its network part and its host part.

use std::process::ExitCode;

use clap::Parser;
use protolab_subnet::{Report, Split, SplitReport, parse, split};
use protolab_transport::outln;
use serde::Serialize;

const EXAMPLES: &str = "\
Examples:
    subnet 192.168.1.77/26                  the address, mask, network, broadcast and hosts
    subnet 192.168.1.77 255.255.255.192     the same, with a dotted mask
    subnet 192.168.1.77/26 --split 4        the network in 4 equal subnets
    subnet 192.168.1.0/24 --split /27       the network in /27 subnets
    subnet 10.0.0.0/31                      a point-to-point link (RFC 3021)
    subnet 2001:db8:abcd:12::1/48           IPv6: expanded form, /64 subnets, address kind
    subnet fd00::1/64 --json                the report as JSON (fields in docs/subnet.md)
";

#[derive(Debug, Parser)]
#[command(name = "subnet", version, about, after_help = EXAMPLES)]
struct Cli {
    /// More logging (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// The address with its prefix (192.168.1.77/26, 2001:db8::1/64) or with a mask after it.
    #[arg(required_unless_present = "generate")]
    address: Option<String>,
    /// A mask for the address: dotted (255.255.255.192) or a prefix length (/26).
    mask: Option<String>,
    /// Divide the network into N equal subnets (a power of two) or into /PREFIX subnets.
    #[arg(long, value_name = "N|/PREFIX")]
    split: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Write shell completions or man pages (used by `cargo xtask install`); subnet has no
    /// subcommands, so this is a hidden option rather than the others' `generate`.
    #[arg(long, hide = true, value_enum)]
    generate: Option<protolab_transport::cli::Generated>,
    /// With --generate: the folder to write into.
    #[arg(long, hide = true, default_value = ".")]
    out: std::path::PathBuf,
}

#[derive(Serialize)]
struct JsonOut<'a> {
    #[serde(flatten)]
    report: &'a Report,
    #[serde(skip_serializing_if = "Option::is_none")]
    split: Option<&'a SplitReport>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    protolab_transport::cli::init_tracing(tracing::Level::WARN, cli.verbose);
    protolab_transport::cli::exit_with(run(cli))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    use protolab_transport::cli::Failure;
    if let Some(what) = cli.generate {
        let args = protolab_transport::cli::GenerateArgs { what, out: cli.out };
        protolab_transport::cli::generate(<Cli as clap::CommandFactory>::command(), &args)?;
        return Ok(());
    }
    let address = cli.address.as_deref().unwrap_or_default();
    // Every failure here is bad input: usage errors exit 2.
    let outcome = parse(address, cli.mask.as_deref()).and_then(|subnet| {
        let report = Report::new(&subnet);
        let split = match &cli.split {
            Some(text) => Some(split(&subnet, text.parse::<Split>()?)?),
            None => None,
        };
        Ok((report, split))
    });
    let (report, split) = outcome.map_err(|e| Failure::usage(e.to_string()))?;
    if cli.json {
        let out = JsonOut {
            report: &report,
            split: split.as_ref(),
        };
        outln!("{}", serde_json::to_string(&out)?);
    } else {
        print_report(&report);
        if let Some(s) = &split {
            outln!();
            print_split(s);
        }
    }
    Ok(())
}

fn print_report(r: &Report) {
    let bits = |n: u8| {
        if n == 1 {
            "1 bit".to_owned()
        } else {
            format!("{n} bits")
        }
    };
    outln!(
        "{}/{}: network part {} | host part {}",
        r.address,
        r.prefix,
        bits(r.prefix),
        bits(r.host_bits)
    );
    outln!();
    let b = &r.binary;
    if r.family == 4 {
        let row = |label: &str, value: &str, bits: &str, note: &str| {
            let line = format!("{label:<11} {value:<16} {bits}  {note}");
            outln!("{}", line.trim_end());
        };
        row("address", &r.address, &b.address, "");
        row("mask", &r.mask, &b.mask, &format!("/{}", r.prefix));
        row("wildcard", &r.wildcard, &b.wildcard, "NOT mask");
        row("network", &r.network, &b.network, "address AND mask");
        match &r.broadcast {
            Some(bc) => row("broadcast", bc, &b.last_address, "network OR wildcard"),
            None => row("last", &r.last_address, &b.last_address, "(no broadcast)"),
        }
        outln!("{:<11} {}", "first host", r.first_host);
        outln!("{:<11} {}", "last host", r.last_host);
        outln!(
            "{:<11} {} of {} addresses: {}",
            "hosts",
            r.hosts,
            r.addresses,
            r.host_rule
        );
    } else {
        let row = |label: &str, value: &str| outln!("{label:<11} {value}");
        row("address", &r.address);
        row("expanded", &r.expanded);
        row("mask", &format!("{} (/{})", r.mask, r.prefix));
        row("wildcard", &r.wildcard);
        row("network", &r.cidr);
        row("last", &r.last_address);
        row("first host", &r.first_host);
        row("last host", &r.last_host);
        row("addresses", &format!("{} (2^{})", r.addresses, r.host_bits));
        row("hosts", &format!("{}: {}", r.hosts, r.host_rule));
        if let Some(n) = &r.subnets_64 {
            row(
                "/64 LANs",
                &format!("{n}: a /64 is one LAN, 64 network bits and a 64-bit interface id"),
            );
        }
        print_kinds(r);
        outln!();
        outln!("binary (| marks the cut)");
        row("address", &b.address);
        row("mask", &b.mask);
        row("network", &b.network);
        return;
    }
    print_kinds(r);
}

fn print_kinds(r: &Report) {
    for (i, k) in r.kinds.iter().enumerate() {
        let label = if i == 0 { "kind" } else { "" };
        outln!("{label:<11} {}: {}", k.name, k.range);
    }
}

fn print_split(s: &SplitReport) {
    outln!(
        "{} split into {} subnets of /{} ({} bits moved from the host part to the network part):",
        s.from,
        s.count,
        s.prefix,
        s.borrowed_bits
    );
    let w = |f: fn(&protolab_subnet::SubnetRow) -> usize, min: usize| {
        s.subnets.iter().map(f).max().unwrap_or(0).max(min)
    };
    let wc = w(|r| r.cidr.len(), 6);
    let wf = w(|r| r.first_host.len(), 10);
    let wl = w(|r| r.last_host.len(), 9);
    let v4 = s.subnets.iter().any(|r| r.broadcast.is_some());
    let wb = if v4 {
        w(|r| r.broadcast.as_ref().map_or(0, String::len), 9)
    } else {
        0
    };
    if v4 {
        outln!(
            "{:<wc$}  {:<wf$}  {:<wl$}  {:<wb$}  hosts",
            "subnet",
            "first host",
            "last host",
            "broadcast"
        );
    } else {
        outln!(
            "{:<wc$}  {:<wf$}  {:<wl$}  hosts",
            "subnet",
            "first host",
            "last host"
        );
    }
    for r in &s.subnets {
        if v4 {
            let bc = r.broadcast.as_deref().unwrap_or("-");
            outln!(
                "{:<wc$}  {:<wf$}  {:<wl$}  {bc:<wb$}  {}",
                r.cidr,
                r.first_host,
                r.last_host,
                r.hosts
            );
        } else {
            outln!(
                "{:<wc$}  {:<wf$}  {:<wl$}  {}",
                r.cidr,
                r.first_host,
                r.last_host,
                r.hosts
            );
        }
    }
}
