//! HTTP peers the tests and the benchmark start the same way: nginx serving a folder, and
//! Python's `http.server`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::{Proc, free_port, is_root, require_peer, wait_tcp};

/// An nginx of the lab's own: writes a complete `dir/nginx.conf` and returns the command that
/// runs nginx on it in the foreground. Its pid file, error log and temporary files are under
/// `dir` (in `dir/tmp`, which this creates); `workers` worker processes (a number or `auto`),
/// `connections` per worker, and `http` inside the `http` block (`proxy_cache_path`, the
/// `server` blocks). As root the workers run as root too: as nobody they could not read a
/// private temporary folder. Panics when nginx is not installed, naming the package.
///
/// # Errors
/// `dir/tmp` or the configuration cannot be written.
pub fn nginx_command(
    dir: &Path,
    workers: &str,
    connections: u32,
    http: &str,
) -> std::io::Result<Command> {
    let nginx = require_peer("nginx", "nginx");
    std::fs::create_dir_all(dir.join("tmp"))?;
    let d = dir.display();
    let user = if is_root() { "user root;\n" } else { "" };
    let conf = format!(
        "{user}worker_processes {workers};\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         worker_rlimit_nofile 65536;\nevents {{ worker_connections {connections}; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/tmp/body;\n  \
         proxy_temp_path {d}/tmp/proxy;\n  fastcgi_temp_path {d}/tmp/fastcgi;\n  \
         uwsgi_temp_path {d}/tmp/uwsgi;\n  scgi_temp_path {d}/tmp/scgi;\n{http}}}\n"
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf)?;
    let mut cmd = Command::new(nginx);
    cmd.arg("-e")
        .arg(dir.join("error.log"))
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(conf_path)
        .args(["-g", "daemon off;"]);
    Ok(cmd)
}

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
        crate::sample::children(self.proc.pid())
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
    let port = free_port();
    let mut cmd = nginx_command(
        dir,
        &workers.to_string(),
        16384,
        &format!(
            "  keepalive_requests 100000;\n  keepalive_timeout 60s;\n  \
             server {{\n    listen 127.0.0.1:{port}{listen};\n    root {site};\n{server}  }}\n",
            site = site.display()
        ),
    )
    .expect("write nginx.conf");
    let proc = Proc::spawn("nginx", &mut cmd);
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
