//! Socket address parsing shared by every binary.
//!
//! Accepted forms: `host:port`, `[v6]:port`, a bare IP address (with the service's default
//! port) and a bare port (meaning loopback, the safe default). `localhost` means 127.0.0.1:
//! resolving it through the system could pick ::1 on one machine and 127.0.0.1 on another.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Why an address could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AddrError {
    #[error("empty address: give host:port, [v6]:port or a port")]
    Empty,
    #[error("bad port in {0:?}: a port is a number from 0 to 65535")]
    BadPort(String),
    #[error("bad address {0:?}: give an IP address and port like 127.0.0.1:9999 or [::1]:9999")]
    BadHost(String),
}

/// Parses a socket address, using `default_port` when only a host is given.
///
/// # Errors
/// [`AddrError`] names what is wrong with the text.
pub fn parse_addr(text: &str, default_port: u16) -> Result<SocketAddr, AddrError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(AddrError::Empty);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let port = text
            .parse::<u16>()
            .map_err(|_| AddrError::BadPort(text.to_owned()))?;
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    if let Some(host) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        return host
            .parse::<IpAddr>()
            .map(|ip| SocketAddr::new(ip, default_port))
            .map_err(|_| AddrError::BadHost(text.to_owned()));
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, default_port));
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, Some(port)),
        _ => (text, None),
    };
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| AddrError::BadPort(text.to_owned()))?,
        None => default_port,
    };
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    host.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, port))
        .map_err(|_| AddrError::BadHost(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(
            parse_addr("127.0.0.1:80", 1).unwrap(),
            "127.0.0.1:80".parse().unwrap()
        );
        assert_eq!(
            parse_addr("[::1]:53", 1).unwrap(),
            "[::1]:53".parse().unwrap()
        );
        assert_eq!(
            parse_addr("9999", 1).unwrap(),
            "127.0.0.1:9999".parse().unwrap()
        );
        assert_eq!(
            parse_addr("10.1.2.3", 53).unwrap(),
            "10.1.2.3:53".parse().unwrap()
        );
        assert_eq!(parse_addr("::1", 53).unwrap(), "[::1]:53".parse().unwrap());
        assert_eq!(
            parse_addr("[::1]", 53).unwrap(),
            "[::1]:53".parse().unwrap()
        );
        assert_eq!(
            parse_addr("localhost:25", 1).unwrap(),
            "127.0.0.1:25".parse().unwrap()
        );
        assert_eq!(
            parse_addr(" localhost ", 7).unwrap(),
            "127.0.0.1:7".parse().unwrap()
        );
    }

    #[test]
    fn errors() {
        assert_eq!(parse_addr("", 1), Err(AddrError::Empty));
        assert_eq!(
            parse_addr("70000", 1),
            Err(AddrError::BadPort("70000".into()))
        );
        assert_eq!(
            parse_addr("1.2.3.4:x", 1),
            Err(AddrError::BadPort("1.2.3.4:x".into()))
        );
        assert!(matches!(
            parse_addr("example.com:80", 1),
            Err(AddrError::BadHost(_))
        ));
        assert!(matches!(
            parse_addr("[zz]:1", 1),
            Err(AddrError::BadHost(_))
        ));
    }
}
