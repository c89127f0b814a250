//! `http`: the HTTP/1.1 origin server and client (their commands arrive with the I/O drivers).

fn main() -> std::process::ExitCode {
    eprintln!("error: http: no command yet: the core library is usable from Rust");
    std::process::ExitCode::from(2)
}
