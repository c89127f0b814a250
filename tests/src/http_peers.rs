//! HTTP peers the tests and the benchmark start the same way: nginx serving a folder, and
//! Python's `http.server`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::{Proc, free_port, is_root, require_peer, wait_tcp};

/// A running nginx; dropping it stops the master with SIGTERM, which stops its workers (killing
/// the master alone would leave the workers running).
#[derive(Debug)]
pub struct Nginx {
    pub proc: Proc,
    pub addr: SocketAddr,
}

impl Nginx {
    /// The PIDs of its worker processes (children of the master), for CPU and memory figures.
    pub fn workers(&self) -> Vec<i32> {
        let master = self.proc.pid();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .ok()
                    .and_then(|s| {
                        let after = s.rsplit_once(')')?.1.split_whitespace().nth(1)?.to_owned();
                        after.parse::<i32>().ok()
                    })
                    == Some(master)
            })
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.proc.signal(libc::SIGTERM);
        let _ = self.proc.wait_for(Duration::from_secs(5));
    }
}

/// Starts nginx in the foreground on a free loopback port, serving `site`, with its
/// configuration, pid file, logs and temporary files under `dir`. `workers` is its
/// `worker_processes`; keep-alive is allowed for up to 100,000 requests per connection so a
/// load test measures requests, not reconnections.
pub fn start_nginx(dir: &Path, site: &Path, workers: usize) -> Nginx {
    start_nginx_with(dir, site, workers, "", "")
}

/// As [`start_nginx`], with TLS on its port (`listen ... ssl`): the certificate chain and key
/// given (PEM), TLS 1.2 and 1.3, and no session resumption at all (no session cache, no
/// tickets), so every connection pays a full handshake, as a client that never resumes sees.
pub fn start_nginx_tls(dir: &Path, site: &Path, workers: usize, cert: &Path, key: &Path) -> Nginx {
    let tls = format!(
        "    ssl_certificate {};\n    ssl_certificate_key {};\n    ssl_protocols TLSv1.2 TLSv1.3;\n\
         \x20   ssl_session_cache off;\n    ssl_session_tickets off;\n",
        cert.display(),
        key.display()
    );
    start_nginx_with(dir, site, workers, " ssl", &tls)
}

fn start_nginx_with(dir: &Path, site: &Path, workers: usize, listen: &str, server: &str) -> Nginx {
    let nginx = require_peer("nginx", "nginx");
    let port = free_port();
    let d = dir.display();
    // As root, nginx's workers would run as nobody and could not read a private temp folder.
    let user = if is_root() { "user root;\n" } else { "" };
    let conf = format!(
        "{user}daemon off;\nmaster_process on;\nworker_processes {workers};\npid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\nworker_rlimit_nofile 65536;\n\
         events {{ worker_connections 16384; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         \x20 fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         \x20 keepalive_requests 100000;\n  keepalive_timeout 60s;\n\
         \x20 server {{\n    listen 127.0.0.1:{port}{listen};\n    root {site};\n{server}  }}\n}}\n",
        site = site.display()
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).expect("write nginx.conf");
    let proc = Proc::spawn(
        "nginx",
        Command::new(nginx)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf_path),
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let nginx = Nginx { proc, addr };
    wait_tcp(addr, Duration::from_secs(10));
    nginx
}

/// Starts `python3 -m http.server` on a free loopback port, serving `site`.
pub fn start_python_http(site: &Path) -> (Proc, SocketAddr) {
    let python = require_peer("python3", "python3");
    let port = free_port();
    let proc = Proc::spawn(
        "python3 -m http.server",
        Command::new(python)
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .current_dir(site),
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_tcp(addr, Duration::from_secs(10));
    (proc, addr)
}
