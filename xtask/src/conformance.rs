//! `cargo xtask conformance http-cache`: the HTTP cache test suite against `http proxy` and,
//! in the same run, against Debian's trafficserver, squid, varnish, nginx and apache2, each a
//! reverse proxy in front of its own copy of the suite's origin, configured as in the suite's
//! docker/ folder. Every cache runs from a temporary folder with its own config, pid file, logs
//! and a free port; none is the system service, and each is stopped by its own PID.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use protolab_lab::http_peers::nginx_command;
use protolab_lab::{Proc, free_port, wait_tcp};
use protolab_tests::cache_suite::{self, Score, Suite};

use crate::util;

const HELP: &str = "\
cargo xtask conformance http-cache [--only NAME,...] [--json] [--keep DIR]

Runs the HTTP cache test suite ($PROTOLAB_SUITES/cache-tests, default ../shared/suites) through
`http proxy --upstream` and through Debian's caches configured as in the suite's docker/ folder,
all at once (each against its own origin), and prints required, optimal and check results per
cache. Caches: protolab, trafficserver, squid, varnish, nginx, apache2.

    --only protolab,squid   run only these caches
    --json                  print the table as JSON
    --keep DIR              keep each cache's results, config and logs in DIR
";

/// Published scores (required tests passed out of 160), for the notes under the table.
const PUBLISHED: &str = "published (cache-tests.fyi): Traffic Server 132, httpd 131, Squid 122, Caddy 121, Varnish 119, nginx 99";

const CACHES: [&str; 6] = [
    "protolab",
    "trafficserver",
    "squid",
    "varnish",
    "nginx",
    "apache2",
];

pub fn run(args: &[String]) -> Result<()> {
    let Some((what, rest)) = args.split_first() else {
        print!("{HELP}");
        return Ok(());
    };
    if what != "http-cache" {
        bail!("unknown conformance suite {what:?}: the one there is is http-cache");
    }
    let mut only: Vec<String> = CACHES.iter().map(|s| (*s).to_owned()).collect();
    let mut json = false;
    let mut keep: Option<PathBuf> = None;
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => json = true,
            "--only" => {
                let list = it.next().context("--only needs a list of caches")?;
                only = list.split(',').map(str::to_owned).collect();
                if let Some(bad) = only.iter().find(|c| !CACHES.contains(&c.as_str())) {
                    bail!(
                        "--only: unknown cache {bad:?}; known: {}",
                        CACHES.join(", ")
                    );
                }
            }
            "--keep" => keep = Some(PathBuf::from(it.next().context("--keep needs a folder")?)),
            "-h" | "--help" => {
                print!("{HELP}");
                return Ok(());
            }
            other => bail!("unknown option {other:?}\n\n{HELP}"),
        }
    }

    let suite = cache_suite::prepare().map_err(anyhow::Error::msg)?;
    let bins = util::build_bins_of(false, &["protolab-http"])?;
    let tmp = tempfile::Builder::new()
        .prefix("protolab-cache-tests-")
        .tempdir()
        .context("temporary folder")?;
    let base = keep.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&base)?;
    // The folders must be reachable by the users the caches drop to (proxy, www-data, ...).
    let _ = Command::new("chmod").arg("755").arg(&base).status();

    eprintln!(
        "running {} test runs of about a minute each, side by side: {}",
        only.len(),
        only.join(", ")
    );
    let results: Vec<(String, Result<Score>)> = std::thread::scope(|s| {
        let handles: Vec<_> = only
            .iter()
            .map(|name| {
                let dir = base.join(name);
                let suite = suite.clone();
                let bins = bins.clone();
                let name = name.clone();
                s.spawn(move || {
                    let r = run_one(&name, &suite, &bins, &dir);
                    (name, r)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| ("?".to_owned(), Err(anyhow::anyhow!("panicked"))))
            })
            .collect()
    });

    let mut table = util::Table::new(
        "conformance-http-cache",
        &["cache", "required", "optimal", "check (yes)", "note"],
    );
    let mut out = serde_json::Map::new();
    for (name, r) in &results {
        match r {
            Ok(s) => {
                table.row(vec![
                    name.clone(),
                    format!("{}/{}", s.required, s.required_total),
                    format!("{}/{}", s.optimal, s.optimal_total),
                    format!("{}/{}", s.check_yes, s.check_total),
                    String::new(),
                ]);
                out.insert(name.clone(), serde_json::to_value(s)?);
            }
            Err(e) => {
                table.row(vec![
                    name.clone(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    format!("{e:#}"),
                ]);
                out.insert(
                    name.clone(),
                    serde_json::json!({ "error": format!("{e:#}") }),
                );
            }
        }
    }
    table.note(PUBLISHED);
    if let Some(Ok(ours)) = results
        .iter()
        .find(|(n, _)| n == "protolab")
        .map(|(_, r)| r)
    {
        let best_other = results
            .iter()
            .filter(|(n, _)| n != "protolab")
            .filter_map(|(n, r)| r.as_ref().ok().map(|s| (n, s.required)))
            .max_by_key(|(_, r)| *r);
        if let Some((n, r)) = best_other {
            table.note(format!(
                "protolab: {} required ({} ahead of the best other cache here, {n} with {r})",
                ours.required,
                i64::from(ours.required) - i64::from(r)
            ));
        }
        if let Ok(fails) = suite.failures(&base.join("protolab").join("results.json"), "required") {
            for f in fails {
                table.note(format!("protolab required failure: {f}"));
            }
        }
    }
    table.figure("scores", serde_json::Value::Object(out));
    if json {
        println!("{}", serde_json::to_string_pretty(&table)?);
    } else {
        table.finish()?;
    }
    if keep.is_some() {
        eprintln!("results, configs and logs kept in {}", base.display());
    }
    Ok(())
}

/// Starts an origin and the cache `name` in front of it, runs the suite, stops both.
fn run_one(name: &str, suite: &Suite, bins: &Path, dir: &Path) -> Result<Score> {
    std::fs::create_dir_all(dir)?;
    let _ = Command::new("chmod").arg("755").arg(dir).status();
    let (origin, origin_port) = suite.start_origin(dir).map_err(anyhow::Error::msg)?;
    let port = free_port();
    let mut cache = start_cache(name, bins, dir, port, origin_port)?;
    wait_tcp(([127, 0, 0, 1], port).into(), Duration::from_secs(30));
    let results = dir.join("results.json");
    let run = suite.run_client(&format!("http://127.0.0.1:{port}"), &results);
    // SIGTERM, a few seconds to exit (nginx and varnishd stop their children), then SIGKILL.
    cache.terminate(Duration::from_secs(10));
    drop(origin);
    run.map_err(anyhow::Error::msg)?;
    suite.score(&results).map_err(anyhow::Error::msg)
}

fn spawn(name: &str, cmd: &mut Command, dir: &Path) -> Result<Proc> {
    Proc::spawn_logged(name, cmd, &dir.join(format!("{name}.out"))).with_context(|| {
        format!("cannot start {name}: is it installed? (cargo xtask test installs the peers)")
    })
}

fn chown(user: &str, path: &Path) {
    let _ = Command::new("chown").args(["-R", user]).arg(path).status();
}

fn start_cache(name: &str, bins: &Path, dir: &Path, port: u16, origin: u16) -> Result<Proc> {
    let d = dir.display();
    match name {
        "protolab" => spawn(
            name,
            Command::new(bins.join("http")).args([
                "proxy",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--upstream",
                &format!("http://127.0.0.1:{origin}"),
            ]),
            dir,
        ),
        "nginx" => {
            std::fs::create_dir_all(dir.join("cache"))?;
            // As docker/nginx/nginx.conf, inside a complete nginx.conf of its own.
            let http = format!(
                "  proxy_cache_path {d}/cache levels=1:2 keys_zone=my-cache:8m max_size=1000m inactive=600m;\n  \
                 server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      \
                 proxy_pass http://127.0.0.1:{origin};\n      proxy_cache my-cache;\n      \
                 proxy_cache_revalidate on;\n      proxy_http_version 1.1;\n    }}\n  }}\n"
            );
            spawn(name, &mut nginx_command(dir, "1", 2048, &http)?, dir)
        }
        "squid" => {
            // As docker/squid/squid.conf, memory cache only, with files kept in `dir`.
            let conf = format!(
                "http_port 127.0.0.1:{port} accel defaultsite=127.0.0.1 no-vhost\n\
                 cache_peer 127.0.0.1 parent {origin} 0 no-query no-digest originserver default name=myAccel\n\
                 cache_peer_access myAccel allow all\nhttp_access allow all\n\
                 shutdown_lifetime 1 second\nconnect_retries 3\n\
                 pid_filename {d}/squid.pid\ncache_log {d}/cache.log\naccess_log none\n\
                 cache_store_log none\ncache_mem 64 MB\ncoredump_dir {d}\nnetdb_filename none\n\
                 pinger_enable off\n"
            );
            std::fs::write(dir.join("squid.conf"), conf)?;
            chown("proxy", dir);
            spawn(
                name,
                Command::new("squid")
                    .arg("-N")
                    .arg("-f")
                    .arg(dir.join("squid.conf")),
                dir,
            )
        }
        "varnish" => spawn(
            name,
            // As docker/serve.sh: the default VCL's backend, TTL 0, no grace, keep 3600.
            Command::new("varnishd")
                .arg("-F")
                .arg("-n")
                .arg(dir.join("work"))
                .args(["-a", &format!("127.0.0.1:{port}")])
                .args(["-b", &format!("127.0.0.1:{origin}")])
                .args([
                    "-p",
                    "default_ttl=0",
                    "-p",
                    "default_grace=0",
                    "-p",
                    "default_keep=3600",
                ])
                .args(["-s", "malloc,64M"])
                .arg("-P")
                .arg(dir.join("varnishd.pid")),
            dir,
        ),
        "apache2" => {
            let cache = dir.join("cache");
            std::fs::create_dir_all(&cache)?;
            std::fs::create_dir_all(dir.join("run"))?;
            chown("www-data", &cache);
            let m = "/usr/lib/apache2/modules";
            // As docker/apache/apache.conf, with only the modules it needs.
            let conf = format!(
                "LoadModule mpm_event_module {m}/mod_mpm_event.so\n\
                 LoadModule authz_core_module {m}/mod_authz_core.so\n\
                 LoadModule negotiation_module {m}/mod_negotiation.so\n\
                 LoadModule proxy_module {m}/mod_proxy.so\n\
                 LoadModule proxy_http_module {m}/mod_proxy_http.so\n\
                 LoadModule cache_module {m}/mod_cache.so\n\
                 LoadModule cache_disk_module {m}/mod_cache_disk.so\n\
                 LoadModule socache_shmcb_module {m}/mod_socache_shmcb.so\n\
                 LoadModule cache_socache_module {m}/mod_cache_socache.so\n\
                 ServerRoot {d}\nDefaultRuntimeDir {d}/run\nPidFile {d}/apache2.pid\n\
                 ErrorLog {d}/error.log\nLogLevel warn\nServerName 127.0.0.1\n\
                 User www-data\nGroup www-data\nMutex sem\nListen 127.0.0.1:{port}\n\
                 <VirtualHost *:{port}>\n  ProxyPass \"/\" \"http://127.0.0.1:{origin}/\"\n  \
                 CacheEnable disk /\n  CacheRoot {d}/cache\n  CacheDirLevels 5\n  CacheDirLength 3\n  \
                 CacheDefaultExpire 0\n  CacheIgnoreNoLastMod On\n  CacheStoreExpired On\n  \
                 CacheNegotiatedDocs On\n  UseCanonicalName On\n  CacheHeader On\n  \
                 CacheDetailHeader on\n</VirtualHost>\n"
            );
            std::fs::write(dir.join("apache2.conf"), conf)?;
            spawn(
                name,
                Command::new("apache2")
                    .arg("-X")
                    .arg("-f")
                    .arg(dir.join("apache2.conf")),
                dir,
            )
        }
        "trafficserver" => {
            let etc = dir.join("etc");
            for sub in ["etc", "cache", "var", "run", "log"] {
                std::fs::create_dir_all(dir.join(sub))?;
            }
            let status = Command::new("cp")
                .args(["-r", "--no-preserve=mode"])
                .arg("/etc/trafficserver/.")
                .arg(&etc)
                .status()?;
            if !status.success() {
                bail!("cannot copy /etc/trafficserver: is trafficserver installed?");
            }
            // A runroot of its own: every path the server writes is inside `dir`.
            let runroot = format!(
                "prefix: {d}\nexec_prefix: /usr\nbindir: /usr/bin\nsbindir: /usr/sbin\n\
                 sysconfdir: {d}/etc\ndatadir: {d}/cache\nincludedir: /usr/include\n\
                 libdir: /usr/lib/trafficserver\nlibexecdir: /usr/lib/trafficserver/modules\n\
                 localstatedir: {d}/var\nruntimedir: {d}/run\nlogdir: {d}/log\ncachedir: {d}/cache\n"
            );
            std::fs::write(dir.join("runroot.yaml"), runroot)?;
            std::fs::write(etc.join("storage.config"), format!("{d}/cache 64M\n"))?;
            std::fs::write(
                etc.join("remap.config"),
                format!("map http://127.0.0.1:{port}/ http://127.0.0.1:{origin}/\n"),
            )?;
            // docker/trafficserver/records.config, with the port, the pid file and the user
            // changed: this run stays root inside its own folder.
            let records = suite_records()?
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
                .map(|l| {
                    if l.contains("proxy.config.http.server_ports") {
                        format!("CONFIG proxy.config.http.server_ports STRING {port}:ipv4")
                    } else if l.contains("proxy.config.admin.user_id") {
                        "CONFIG proxy.config.admin.user_id STRING #-1".to_owned()
                    } else {
                        l.to_owned()
                    }
                })
                .chain(std::iter::once(format!(
                    "CONFIG proxy.config.pid_file STRING {d}/run/server.lock"
                )))
                .collect::<Vec<_>>()
                .join("\n");
            std::fs::write(etc.join("records.config"), records + "\n")?;
            spawn(
                name,
                Command::new("traffic_server")
                    .arg(format!("--run-root={d}"))
                    .current_dir(dir),
                dir,
            )
        }
        other => bail!("unknown cache {other}"),
    }
}

fn suite_records() -> Result<String> {
    let path = cache_suite::locate()
        .map_err(anyhow::Error::msg)?
        .join("docker/trafficserver/records.config");
    std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))
}
