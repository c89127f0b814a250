//! `cargo xtask demo layers`: one captured packet taken apart layer by layer.
//!
//! As root, `impair link` joins two namespaces and captures every packet (`--pcap`). The
//! greeting conversation, one udpecho probe and one DNS query cross it. The demo then reads
//! the capture back and shows, for the client's `Hello, Michael!` segment, a probe datagram and
//! the DNS query, each header's bytes in hex beside the fields they hold: the IP header (with
//! the address split by the mask into network and host), the TCP or UDP header, and the
//! application's bytes (a DNS message decoded with hickory-proto). etherparse decodes the
//! headers. `--json` also writes what was read, which a test compares with tshark's
//! dissection of the same capture.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use etherparse::{Ipv4HeaderSlice, TcpHeaderSlice, UdpHeaderSlice};
use protolab_lab::output_ok;
use protolab_lab::{Server, is_root};
use serde_json::{Value, json};

use super::compare::{DemoLink, Side, start_link};
use crate::util;

const GREETING: &[u8] = b"Hello, Michael!";
const DNS_PORT: u16 = 5300;
const ECHO_PORT: u16 = 7777;

struct Options {
    out: PathBuf,
    prefix: u8,
    json: bool,
}

fn options(args: &[String]) -> Result<Options> {
    let mut o = Options {
        out: util::root().join("target/demo-layers"),
        prefix: 24,
        json: false,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--out" => o.out = PathBuf::from(it.next().context("--out needs a folder")?),
            "--prefix" => {
                o.prefix = it
                    .next()
                    .context("--prefix needs a length")?
                    .parse()
                    .context("--prefix takes a number from 0 to 32")?;
                if o.prefix > 32 {
                    bail!("--prefix takes a number from 0 to 32");
                }
            }
            "--json" => o.json = true,
            other => {
                bail!("unknown option {other:?} for demo layers: use --out, --prefix or --json")
            }
        }
    }
    Ok(o)
}

pub fn run(args: &[String]) -> Result<()> {
    let opts = options(args)?;
    if !is_root() {
        bail!(
            "demo layers needs root: it captures the packets on `impair link` between two network \
             namespaces (run it as root)"
        );
    }
    let bins = util::build_bins_of(
        false,
        &[
            "protolab-impair",
            "protolab-greet",
            "protolab-udpecho",
            "protolab-dns",
        ],
    )?;
    std::fs::create_dir_all(&opts.out).with_context(|| format!("create {}", opts.out.display()))?;
    let pcap = opts.out.join("layers.pcap");
    println!("== One packet, layer by layer ==\n");
    capture(&bins, &pcap)?;
    let packets = read_pcap(&pcap)?;
    println!(
        "The link captured {} packets into {} (tshark -r opens it). Three of them, taken apart:\n",
        packets.len(),
        pcap.display()
    );

    let mut found = Vec::new();
    let tcp = packets
        .iter()
        .position(|p| tcp_payload(p).is_some_and(|d| contains(d, GREETING)))
        .context("no segment carrying \"Hello, Michael!\" in the capture")?;
    found.push(show(tcp, &packets[tcp], opts.prefix)?);
    let udp = packets
        .iter()
        .position(|p| udp_ports(p).is_some_and(|(_, d)| d == ECHO_PORT))
        .context("no udpecho probe in the capture")?;
    found.push(show(udp, &packets[udp], opts.prefix)?);
    let dns = packets
        .iter()
        .position(|p| udp_ports(p).is_some_and(|(_, d)| d == DNS_PORT))
        .context("no DNS query in the capture")?;
    found.push(show(dns, &packets[dns], opts.prefix)?);
    if opts.json {
        let path = opts.out.join("layers.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&found)?)
            .with_context(|| format!("write {}", path.display()))?;
        println!("What was read, as JSON: {}", path.display());
    }
    Ok(())
}

/// Runs the three exchanges across a fresh link that captures them.
fn capture(bins: &Path, pcap: &Path) -> Result<()> {
    let link = start_link(
        bins,
        "layers",
        &["--pcap".to_owned(), pcap.display().to_string()],
    )?;
    let greet = Server::start_cmd(
        "greet serve",
        {
            let mut c = link.run_in(Side::Right, &bins.join("greet"));
            c.args(["serve", "--listen", "198.18.0.2:9999"]);
            c
        },
        1,
    );
    let echo = Server::start_cmd(
        "udpecho serve",
        {
            let mut c = link.run_in(Side::Right, &bins.join("udpecho"));
            c.args(["serve", "--listen", "198.18.0.2:7777", "--no-tcp"]);
            c
        },
        1,
    );
    println!(
        "$ ip netns exec {} greet hello --server 198.18.0.2:9999",
        link.left
    );
    let mut hello = link.run_in(Side::Left, &bins.join("greet"));
    hello.args(["hello", "--server", "198.18.0.2:9999", "--timeout", "10s"]);
    output_ok(&mut hello)?;
    println!(
        "$ ip netns exec {} udpecho probe 198.18.0.2:7777 --count 1",
        link.left
    );
    let mut probe = link.run_in(Side::Left, &bins.join("udpecho"));
    probe.args(["probe", "198.18.0.2:7777", "--count", "1", "--quiet"]);
    output_ok(&mut probe)?;
    // Nothing answers on 5300: the query is what this demo takes apart, and the far kernel's
    // ICMP "port unreachable" ends the wait at once.
    println!(
        "$ ip netns exec {} dns query hello.lab A @198.18.0.2:{DNS_PORT} --tries 1 --timeout 1s\n",
        link.left
    );
    let _ = link
        .run_in(Side::Left, &bins.join("dns"))
        .args([
            "query",
            "hello.lab",
            "A",
            &format!("@198.18.0.2:{DNS_PORT}"),
            "--tries",
            "1",
            "--timeout",
            "1s",
            "--seed",
            "1",
        ])
        .output()
        .context("run dns query")?;
    std::thread::sleep(Duration::from_millis(300));
    drop(greet);
    drop(echo);
    link.stop_clean()?;
    Ok(())
}

fn read_pcap(path: &Path) -> Result<Vec<Vec<u8>>> {
    let file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut reader = pcap_file::pcap::PcapReader::new(file).context("read the capture header")?;
    let mut out = Vec::new();
    while let Some(p) = reader.next_packet() {
        out.push(p.context("read a capture record")?.data.into_owned());
    }
    Ok(out)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn ip_header(p: &[u8]) -> Option<Ipv4HeaderSlice<'_>> {
    Ipv4HeaderSlice::from_slice(p).ok()
}

fn tcp_payload(p: &[u8]) -> Option<&[u8]> {
    let ip = ip_header(p)?;
    if ip.protocol() != etherparse::IpNumber::TCP {
        return None;
    }
    let rest = p.get(ip.slice().len()..usize::from(ip.total_len()))?;
    let tcp = TcpHeaderSlice::from_slice(rest).ok()?;
    rest.get(tcp.slice().len()..)
}

fn udp_ports(p: &[u8]) -> Option<(u16, u16)> {
    let ip = ip_header(p)?;
    if ip.protocol() != etherparse::IpNumber::UDP {
        return None;
    }
    let udp = UdpHeaderSlice::from_slice(p.get(ip.slice().len()..)?).ok()?;
    Some((udp.source_port(), udp.destination_port()))
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One field: its bytes in hex, then what they mean.
fn field(bytes: &[u8], meaning: &str) {
    let h = hex(bytes);
    if h.len() <= 24 {
        println!("    {h:<24} {meaning}");
    } else {
        // Long fields (options, payload): 16 bytes of hex per line, the meaning after them.
        for (i, chunk) in bytes.chunks(8).enumerate() {
            if i == 0 {
                println!("    {:<24} {meaning}", hex(chunk));
            } else {
                println!("    {}", hex(chunk));
            }
        }
    }
}

/// An address in binary, split by the mask into network and host parts.
fn split(addr: Ipv4Addr, prefix: u8) -> String {
    let bits = u32::from(addr);
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    };
    let binary: String = (0..32)
        .map(|i| {
            let bit = if bits & (1 << (31 - i)) != 0 {
                '1'
            } else {
                '0'
            };
            let sep = if i == usize::from(prefix) && i > 0 {
                "|"
            } else if i > 0 && i % 8 == 0 {
                "."
            } else {
                ""
            };
            format!("{sep}{bit}")
        })
        .collect();
    format!(
        "{binary}  network {}/{prefix} | host {}",
        Ipv4Addr::from(bits & mask),
        Ipv4Addr::from(bits & !mask)
    )
}

/// Prints packet number `index` (0-based; frame index+1 in tshark) layer by layer and returns
/// what it read.
fn show(index: usize, p: &[u8], prefix: u8) -> Result<Value> {
    let ip = ip_header(p).context("not an IPv4 packet")?;
    let h = ip.slice();
    let proto = ip.protocol();
    let kind = if proto == etherparse::IpNumber::TCP {
        "a TCP segment"
    } else {
        "a UDP datagram"
    };
    println!(
        "-- packet {} of the capture: {kind}, {} bytes --",
        index + 1,
        p.len()
    );
    let mask = Ipv4Addr::from(if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    });
    println!("  IP header ({} bytes, RFC 791)", h.len());
    field(
        &h[0..1],
        &format!(
            "version {}, header length {} x 4 = {} bytes",
            h[0] >> 4,
            ip.ihl(),
            h.len()
        ),
    );
    field(
        &h[1..2],
        &format!("DSCP {}, ECN {}", ip.dcp().value(), ip.ecn().value()),
    );
    field(&h[2..4], &format!("total length {} bytes", ip.total_len()));
    field(&h[4..6], &format!("identification {}", ip.identification()));
    field(
        &h[6..8],
        &format!(
            "flags{}{}, fragment offset {}",
            if ip.dont_fragment() { " DF" } else { "" },
            if ip.more_fragments() { " MF" } else { "" },
            ip.fragments_offset().value()
        ),
    );
    field(&h[8..9], &format!("time to live {}", ip.ttl()));
    field(
        &h[9..10],
        &format!(
            "protocol {} ({})",
            proto.0,
            proto.keyword_str().unwrap_or("?")
        ),
    );
    field(
        &h[10..12],
        &format!("header checksum 0x{:04x}", ip.header_checksum()),
    );
    let (src, dst) = (ip.source_addr(), ip.destination_addr());
    field(&h[12..16], &format!("source {src}"));
    println!("    {:<24}   {}", "", split(src, prefix));
    field(&h[16..20], &format!("destination {dst}"));
    println!("    {:<24}   {}", "", split(dst, prefix));
    println!(
        "    {:<24}   with mask {mask} (/{prefix}), the bits before | name the network, the rest the host",
        ""
    );
    let rest = &p[h.len()..usize::from(ip.total_len()).min(p.len())];
    let mut v = json!({
        "frame": index + 1,
        "ip": {
            "src": src.to_string(), "dst": dst.to_string(), "ttl": ip.ttl(),
            "id": ip.identification(), "len": ip.total_len(), "proto": proto.0,
            "checksum": ip.header_checksum(),
        },
    });
    if proto == etherparse::IpNumber::TCP {
        let tcp = TcpHeaderSlice::from_slice(rest).context("a truncated TCP header")?;
        let t = tcp.slice();
        println!("  TCP header ({} bytes, RFC 9293)", t.len());
        field(&t[0..2], &format!("source port {}", tcp.source_port()));
        field(
            &t[2..4],
            &format!("destination port {}", tcp.destination_port()),
        );
        field(
            &t[4..8],
            &format!("sequence number {}", tcp.sequence_number()),
        );
        field(
            &t[8..12],
            &format!("acknowledgment number {}", tcp.acknowledgment_number()),
        );
        let flags: Vec<&str> = [
            (tcp.fin(), "FIN"),
            (tcp.syn(), "SYN"),
            (tcp.rst(), "RST"),
            (tcp.psh(), "PSH"),
            (tcp.ack(), "ACK"),
            (tcp.urg(), "URG"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect();
        field(
            &t[12..14],
            &format!(
                "header length {} x 4 = {} bytes, flags [{}]",
                tcp.data_offset(),
                t.len(),
                flags.join(", ")
            ),
        );
        field(
            &t[14..16],
            &format!("window {} (before scaling)", tcp.window_size()),
        );
        field(&t[16..18], &format!("checksum 0x{:04x}", tcp.checksum()));
        field(
            &t[18..20],
            &format!("urgent pointer {}", tcp.urgent_pointer()),
        );
        if t.len() > 20 {
            let names: Vec<String> = tcp
                .options_iterator()
                .map(|o| match o {
                    Ok(o) => format!("{o:?}"),
                    Err(e) => format!("({e})"),
                })
                .collect();
            field(&t[20..], &format!("options: {}", names.join(", ")));
        }
        let data = &rest[t.len()..];
        println!("  Application data ({} bytes): the greeting", data.len());
        field(data, &format!("{:?}", String::from_utf8_lossy(data)));
        v["tcp"] = json!({
            "srcport": tcp.source_port(), "dstport": tcp.destination_port(),
            "seq": tcp.sequence_number(), "ack": tcp.acknowledgment_number(),
            "len": data.len(), "payload": String::from_utf8_lossy(data),
        });
    } else {
        let udp = UdpHeaderSlice::from_slice(rest).context("a truncated UDP header")?;
        let u = udp.slice();
        println!("  UDP header (8 bytes, RFC 768)");
        field(&u[0..2], &format!("source port {}", udp.source_port()));
        field(
            &u[2..4],
            &format!("destination port {}", udp.destination_port()),
        );
        field(
            &u[4..6],
            &format!("length {} bytes (header and data)", udp.length()),
        );
        field(&u[6..8], &format!("checksum 0x{:04x}", udp.checksum()));
        let data = &rest[u.len()..];
        v["udp"] = json!({
            "srcport": udp.source_port(), "dstport": udp.destination_port(),
            "length": udp.length(),
        });
        if udp.destination_port() == DNS_PORT {
            println!(
                "  Application data ({} bytes): a DNS query (RFC 1035)",
                data.len()
            );
            v["dns"] = dns(data)?;
        } else {
            println!(
                "  Application data ({} bytes): a udpecho probe (docs/udp.md)",
                data.len()
            );
            field(&data[..data.len().min(4)], "magic \"PLUE\"");
            field(
                &data[4..data.len().min(56)],
                "version, flags, flow id, sequence number, timestamps, counters",
            );
            if data.len() > 56 {
                field(&data[56..], "padding");
            }
        }
    }
    println!();
    Ok(v)
}

/// Prints a DNS message's header and question, each with its bytes, decoded with hickory-proto.
fn dns(data: &[u8]) -> Result<Value> {
    use hickory_proto::op::Message;
    use hickory_proto::serialize::binary::BinDecodable;
    let msg = Message::from_bytes(data).context("not a DNS message")?;
    let header = data.get(..12).context("a DNS header is 12 bytes")?;
    let count = |i: usize| u16::from_be_bytes([header[i], header[i + 1]]);
    let m = &msg.metadata;
    field(&header[0..2], &format!("id {}", m.id));
    field(
        &header[2..4],
        &format!(
            "flags: {:?}, opcode {:?}, recursion desired {}",
            m.message_type, m.op_code, m.recursion_desired
        ),
    );
    field(&header[4..6], &format!("questions {}", count(4)));
    field(&header[6..8], &format!("answers {}", count(6)));
    field(&header[8..10], &format!("authority records {}", count(8)));
    field(
        &header[10..12],
        &format!("additional records {}", count(10)),
    );
    let q = msg.queries.first().context("a query without a question")?;
    // The question follows the header: the name as length-prefixed labels, a zero, then
    // type and class.
    let name_len = q.name().to_ascii().trim_end_matches('.').len() + 2;
    let question = &data[12..(12 + name_len + 4).min(data.len())];
    field(
        &question[..name_len.min(question.len())],
        &format!("name {} (labels, each after its length)", q.name()),
    );
    if question.len() >= name_len + 4 {
        field(
            &question[name_len..name_len + 2],
            &format!("type {}", q.query_type()),
        );
        field(
            &question[name_len + 2..name_len + 4],
            &format!("class {}", q.query_class()),
        );
    }
    if data.len() > 12 + question.len() {
        field(
            &data[12 + question.len()..],
            "additional: the OPT record of EDNS (RFC 6891)",
        );
    }
    Ok(json!({
        "id": m.id,
        "name": q.name().to_ascii().trim_end_matches('.'),
        "type": u16::from(q.query_type()),
    }))
}
