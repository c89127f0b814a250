//! TLS for every protocol, in one place: rustls with the ring provider, tokio-rustls for the
//! streams, rcgen for the lab's certificates.
//!
//! A service never builds a rustls configuration of its own. A server gets its identity from
//! [`ServerIdentity`] (real files with `--tls-cert`/`--tls-key`, or an in-memory lab CA with
//! `--tls-self-signed`) and turns it into a [`TlsAcceptor`]; it then calls [`accept`] either at
//! once (implicit TLS on its own port) or in the middle of a plaintext dialog (STARTTLS). A
//! client builds a [`TlsConnector`] with [`client_config`], which verifies the server's
//! certificate against `--cacert` (or the system's CAs) by default, and calls [`connect`]. When
//! a certificate is refused, [`describe_error`] says why in a few words a person can act on:
//! `unknown issuer`, `name mismatch`, `expired`.
//!
//! What TLS protects and what it leaves visible (addresses, ports, sizes, timing, the SNI name)
//! is explained in `docs/tls.md`.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite};

pub use rustls;
pub use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::tcp::{Conn, Next};

/// A TLS stream on the server's side.
pub type ServerStream<S> = tokio_rustls::server::TlsStream<S>;
/// A TLS stream on the client's side.
pub type ClientStream<S> = tokio_rustls::client::TlsStream<S>;

/// The names every lab certificate is made for: loopback by name and address, and the two ends
/// of the lab's link (`impair link` puts 198.18.0.1 and 198.18.0.2 in network namespaces).
pub const LAB_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1", "198.18.0.1", "198.18.0.2"];

/// Where a client looks for the system's CAs when it is given no `--cacert` (Debian's bundle).
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("{}: {why}", path.display())]
    Pem { path: PathBuf, why: String },
    #[error("cannot make a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the certificate and key cannot be used: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Ring as the crypto provider, explicitly: no process-wide default has to be installed, and no
/// second provider (aws-lc-rs) is ever built.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A lab certificate authority, in memory: it signs server certificates for the lab's names.
pub struct LabCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl fmt::Debug for LabCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LabCa").finish_non_exhaustive()
    }
}

/// A certificate chain and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The server's certificate. The CA's is not appended: a client must already hold the root
    /// it trusts, and a root sent along proves nothing (scanners flag it).
    pub cert_pem: String,
    /// The private key, PKCS#8.
    pub key_pem: String,
}

/// When a certificate is valid.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Validity {
    /// From an hour ago (clocks differ a little) to `days` days from now.
    pub fn days_from_now(days: u64) -> Self {
        let now = SystemTime::now();
        Self {
            not_before: now - Duration::from_secs(3600),
            not_after: now + Duration::from_secs(days * 86_400),
        }
    }
}

impl LabCa {
    /// A new CA with an ECDSA P-256 key, valid for ten years, named `common_name`.
    ///
    /// # Errors
    /// Key generation or signing failed.
    pub fn new(common_name: &str) -> Result<Self, TlsError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        // Each lab CA gets a name of its own (a piece of its public key): a client holding
        // another lab CA then says "unknown issuer", not "bad signature" from two CAs whose
        // names are the same.
        let tag: String = key.public_key_raw()[1..5]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        dn.push(DnType::CommonName, format!("{common_name} {tag}"));
        dn.push(DnType::OrganizationName, "protolab lab");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let v = Validity::days_from_now(3650);
        params.not_before = v.not_before.into();
        params.not_after = v.not_after.into();
        Ok(Self {
            issuer: CertifiedIssuer::self_signed(params, key)?,
        })
    }

    /// The CA's certificate, PEM: what clients are given with `--cacert`.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate (ECDSA P-256) for `names` (DNS names or IP addresses).
    ///
    /// # Errors
    /// A name rcgen cannot encode, or signing failed.
    pub fn issue(&self, names: &[&str], validity: Validity) -> Result<Identity, TlsError> {
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, names.first().copied().unwrap_or("lab"));
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = validity.not_before.into();
        params.not_after = validity.not_after.into();
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Identity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// A lab CA and a server certificate for [`LAB_NAMES`], valid for 90 days.
///
/// # Errors
/// Key generation or signing failed.
pub fn lab_ca() -> Result<(LabCa, Identity), TlsError> {
    let ca = LabCa::new("protolab lab CA")?;
    let server = ca.issue(LAB_NAMES, Validity::days_from_now(90))?;
    Ok((ca, server))
}

/// Where a server's certificate comes from.
#[derive(Debug, Clone)]
pub enum ServerIdentity {
    /// A certificate chain and a key from PEM files (`--tls-cert`, `--tls-key`).
    Files { cert: PathBuf, key: PathBuf },
    /// A lab CA made at start, in memory; its certificate is written to `ca_out` for clients.
    SelfSigned { ca_out: PathBuf },
}

impl ServerIdentity {
    /// Loads or makes the identity and builds the server's TLS configuration.
    ///
    /// # Errors
    /// Unreadable or malformed files, a key that does not match, or a CA file that cannot be
    /// written.
    pub fn acceptor(&self) -> Result<TlsAcceptor, TlsError> {
        let (cert_pem, key_pem, what) = match self {
            ServerIdentity::Files { cert, key } => {
                (read(cert)?, read(key)?, (cert.clone(), key.clone()))
            }
            ServerIdentity::SelfSigned { ca_out } => {
                let (ca, id) = lab_ca()?;
                std::fs::write(ca_out, ca.cert_pem()).map_err(|source| TlsError::Write {
                    path: ca_out.clone(),
                    source,
                })?;
                (
                    id.cert_pem.into_bytes(),
                    id.key_pem.into_bytes(),
                    (PathBuf::from("(lab CA)"), PathBuf::from("(lab CA)")),
                )
            }
        };
        Ok(TlsAcceptor::from(server_config(
            &cert_pem, &key_pem, &what.0, &what.1,
        )?))
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn certs_from_pem(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            why: format!("not a PEM certificate file: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_owned(),
            why: "holds no CERTIFICATE block".into(),
        });
    }
    Ok(certs)
}

/// A server configuration from a PEM chain (leaf first) and a PEM private key; the paths only
/// name the files in errors.
///
/// TLS 1.2 and 1.3 with rustls' safe defaults: no RC4, no CBC-mode suites in TLS 1.3, no
/// compression, no renegotiation.
///
/// # Errors
/// Malformed PEM, or a key that does not match the certificate.
pub fn server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_path: &Path,
    key_path: &Path,
) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = certs_from_pem(cert_pem, cert_path)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Pem {
        path: key_path.to_owned(),
        why: format!("no usable private key: {e}"),
    })?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    // The server picks the suite from its own order (strongest first), so a client that lists
    // a weaker suite first does not get it.
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

/// The same server configuration, offering `protocols` by ALPN (RFC 7301), most preferred
/// first: HTTPS says `http/1.1`, so a client that asks for it (curl, browsers, `openssl s_client
/// -alpn`) knows what the server speaks before the first request. A client that offers none
/// of them is refused with the `no_application_protocol` alert, as RFC 7301 section 3.2 says.
pub fn with_alpn(acceptor: &TlsAcceptor, protocols: &[&[u8]]) -> TlsAcceptor {
    let mut config = ServerConfig::clone(acceptor.config());
    config.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
    TlsAcceptor::from(Arc::new(config))
}

/// The same server configuration with session resumption off: no session cache and no TLS 1.3
/// tickets, so every connection pays a full handshake (as nginx with `ssl_session_cache off;
/// ssl_session_tickets off;`). For measuring full handshakes; a server that wants returning
/// clients to be cheap keeps rustls' default (a 256-entry cache and two tickets per
/// connection).
pub fn without_resumption(acceptor: &TlsAcceptor) -> TlsAcceptor {
    let mut config = ServerConfig::clone(acceptor.config());
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    TlsAcceptor::from(Arc::new(config))
}

/// The CAs a client trusts: those in `cacert` (PEM, one or more), or the system's bundle.
///
/// # Errors
/// An unreadable or malformed `cacert`.
pub fn client_config(cacert: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    match cacert {
        Some(path) => {
            for cert in certs_from_pem(&read(path)?, path)? {
                roots.add(cert).map_err(|e| TlsError::Pem {
                    path: path.to_owned(),
                    why: format!("not a usable CA certificate: {e}"),
                })?;
            }
        }
        None => {
            // Without --cacert, trust what the system trusts. A missing bundle leaves the store
            // empty, and every certificate is then refused as "unknown issuer" with a hint.
            if let Ok(pem) = std::fs::read(SYSTEM_CA_BUNDLE) {
                roots.add_parsable_certificates(
                    CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok),
                );
            }
        }
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The name a client checks the certificate against (and sends as SNI when it is a DNS name):
/// an IP address or a DNS name.
///
/// # Errors
/// Text that is neither.
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(host.to_owned()).map_err(|e| format!("{host:?} is not a host name: {e}"))
}

/// What was negotiated, for logs and the `Received:` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: String,
    /// The cipher suite in rustls' (IANA's) name, e.g. `TLS13_AES_128_GCM_SHA256`.
    pub cipher: String,
}

impl fmt::Display for TlsInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} with cipher {}", self.version, self.cipher)
    }
}

impl TlsInfo {
    /// Reads the version and cipher suite of an established connection.
    pub fn of(state: &rustls::CommonState) -> Self {
        let version = match state.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
            Some(other) => format!("{other:?}"),
            None => "TLS".to_owned(),
        };
        let cipher = state
            .negotiated_cipher_suite()
            .map(|s| {
                s.suite()
                    .as_str()
                    .map_or_else(|| format!("{:?}", s.suite()), str::to_owned)
            })
            .unwrap_or_default();
        Self { version, cipher }
    }
}

/// Runs the server's side of the handshake within the connection's idle timeout (a client that
/// connects and says nothing must not hold a slot) and its shutdown.
///
/// # Errors
/// The handshake's error (see [`describe_error`]), `TimedOut`, or `ConnectionAborted` at
/// shutdown.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    acceptor: &TlsAcceptor,
    stream: S,
    conn: &Conn,
) -> io::Result<ServerStream<S>> {
    match conn.bounded(acceptor.accept(stream)).await {
        Next::Item(r) => r,
        Next::IdleTimeout => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "TLS handshake timed out",
        )),
        Next::Eof | Next::Closing => Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "server shutting down",
        )),
    }
}

/// Runs the client's side of the handshake, at most `timeout`.
///
/// # Errors
/// The handshake's error (see [`describe_error`]) or `TimedOut`.
pub async fn connect<S: AsyncRead + AsyncWrite + Unpin>(
    connector: &TlsConnector,
    name: ServerName<'static>,
    stream: S,
    timeout: Duration,
) -> io::Result<ClientStream<S>> {
    tokio::time::timeout(timeout, connector.connect(name, stream))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))?
}

/// One line saying why a TLS handshake failed: for a refused certificate, the reason in words
/// (`unknown issuer`, `name mismatch`, `expired`...) with what would fix it.
pub fn describe_error(e: &io::Error) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => describe_rustls(tls),
        None => e.to_string(),
    }
}

/// As [`describe_error`], for a rustls error.
pub fn describe_rustls(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(c) => {
            format!("certificate refused: {}", describe_certificate(c))
        }
        rustls::Error::AlertReceived(alert) => {
            format!("the peer ended the handshake with the alert {alert:?}")
        }
        rustls::Error::InvalidMessage(_) => {
            format!("not TLS, or a broken TLS message ({e}): is this a plaintext port?")
        }
        other => other.to_string(),
    }
}

/// rustls shows a certificate's names as `DnsName("a.test")` and `IpAddress(127.0.0.1)`; a
/// person wants `a.test` and `127.0.0.1`.
fn plain_name(presented: &str) -> &str {
    for (open, close) in [("DnsName(\"", "\")"), ("IpAddress(", ")")] {
        if let Some(inner) = presented
            .strip_prefix(open)
            .and_then(|r| r.strip_suffix(close))
        {
            return inner;
        }
    }
    presented
}

fn when(t: UnixTime) -> String {
    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(t.as_secs());
    humantime::format_rfc3339_seconds(time).to_string()
}

/// The words for each reason rustls refuses a certificate.
pub fn describe_certificate(e: &CertificateError) -> String {
    match e {
        CertificateError::UnknownIssuer => "unknown issuer: it is not signed by a CA this client \
                                            trusts (give the server's CA with --cacert)"
            .into(),
        CertificateError::NotValidForName => {
            "name mismatch: it is not valid for the name this client asked for".into()
        }
        CertificateError::NotValidForNameContext {
            expected,
            presented,
        } => format!(
            "name mismatch: it is for {}, not {}",
            if presented.is_empty() {
                "no name".to_owned()
            } else {
                presented
                    .iter()
                    .map(|p| plain_name(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            expected.to_str()
        ),
        CertificateError::Expired => "expired".into(),
        CertificateError::ExpiredContext { time, not_after } => format!(
            "expired: it was valid until {}, and it is now {}",
            when(*not_after),
            when(*time)
        ),
        CertificateError::NotValidYet => "not valid yet".into(),
        CertificateError::NotValidYetContext { time, not_before } => format!(
            "not valid yet: it is valid from {}, and it is now {}",
            when(*not_before),
            when(*time)
        ),
        CertificateError::Revoked => "revoked".into(),
        CertificateError::BadSignature => "bad signature".into(),
        CertificateError::BadEncoding => "malformed certificate".into(),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "wrong purpose: it is not a server certificate".into()
        }
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_ca_signs_a_server_certificate_a_client_accepts() {
        let (ca, id) = lab_ca().unwrap();
        let dir = tempfile_dir();
        let ca_path = dir.join("ca.pem");
        std::fs::write(&ca_path, ca.cert_pem()).unwrap();
        server_config(
            id.cert_pem.as_bytes(),
            id.key_pem.as_bytes(),
            Path::new("c"),
            Path::new("k"),
        )
        .unwrap();
        client_config(Some(&ca_path)).unwrap();
        assert_eq!(
            certs_from_pem(id.cert_pem.as_bytes(), Path::new("c"))
                .unwrap()
                .len(),
            1
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn alpn_and_no_resumption_change_a_copy_of_the_configuration() {
        let (_, id) = lab_ca().unwrap();
        let plain = TlsAcceptor::from(
            server_config(
                id.cert_pem.as_bytes(),
                id.key_pem.as_bytes(),
                Path::new("c"),
                Path::new("k"),
            )
            .unwrap(),
        );
        let http = with_alpn(&plain, &[b"http/1.1"]);
        assert_eq!(http.config().alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert!(
            plain.config().alpn_protocols.is_empty(),
            "the original is unchanged"
        );
        assert!(http.config().session_storage.can_cache());
        assert_eq!(http.config().send_tls13_tickets, 2, "rustls' default");

        let full = without_resumption(&http);
        assert!(!full.config().session_storage.can_cache());
        assert_eq!(full.config().send_tls13_tickets, 0);
        assert_eq!(full.config().alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert!(full.config().ignore_client_order, "the rest is kept");
    }

    #[test]
    fn a_file_without_certificates_is_named_in_the_error() {
        let e = certs_from_pem(b"hello", Path::new("/x/ca.pem")).unwrap_err();
        assert!(e.to_string().starts_with("/x/ca.pem: "), "{e}");
    }

    #[test]
    fn refusals_are_said_in_words() {
        let words = |e: CertificateError| describe_rustls(&rustls::Error::InvalidCertificate(e));
        assert!(words(CertificateError::UnknownIssuer).contains("unknown issuer"));
        assert!(words(CertificateError::NotValidForName).contains("name mismatch"));
        assert!(words(CertificateError::Expired).contains("expired"));
        let mismatch = CertificateError::NotValidForNameContext {
            expected: server_name("mx.test").unwrap(),
            presented: vec!["DnsName(\"a.test\")".into(), "IpAddress(127.0.0.1)".into()],
        };
        assert_eq!(
            words(mismatch),
            "certificate refused: name mismatch: it is for a.test, 127.0.0.1, not mx.test"
        );
        let ctx = CertificateError::ExpiredContext {
            time: UnixTime::since_unix_epoch(Duration::from_secs(1_800_000_000)),
            not_after: UnixTime::since_unix_epoch(Duration::from_secs(1_600_000_000)),
        };
        assert_eq!(
            words(ctx),
            "certificate refused: expired: it was valid until 2020-09-13T12:26:40Z, and it is \
             now 2027-01-15T08:00:00Z"
        );
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("protolab-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
