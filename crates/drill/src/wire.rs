//! A buffered TCP connection with the primitives line protocols need: read one CRLF-terminated
//! line, read exactly N bytes (literals, HTTP bodies). Every read has a deadline, so a client
//! never hangs on a node that stopped answering (the drills measure that, they must not wait).

use crate::DrillError;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;

/// Longest line we accept from a server before calling it broken.
pub const MAX_LINE: usize = 1024 * 1024;
/// Largest literal or HTTP body we read.
pub const MAX_BODY: usize = 64 * 1024 * 1024;
/// A connect that takes longer than this is a client error (the node is gone or stuck).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One reply that takes longer than this is a client error (a hang is a failure mode too).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// A byte stream: plain TCP, or TLS after STARTTLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub struct Conn {
    io: BufStream<Box<dyn Io>>,
    addr: String,
}

fn client(what: String) -> DrillError {
    DrillError::Client(what)
}

impl Conn {
    pub async fn connect(addr: &str) -> Result<Self, DrillError> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| client(format!("connect to {addr} timed out")))?
            .map_err(|e| client(format!("connect to {addr}: {e}")))?;
        let _ = stream.set_nodelay(true);
        Ok(Conn {
            io: BufStream::new(Box::new(stream)),
            addr: addr.to_string(),
        })
    }

    /// Whether the peer is on a loopback address (plaintext logins are allowed there).
    pub fn is_loopback(&self) -> bool {
        self.addr
            .parse::<std::net::SocketAddr>()
            .map(|a| a.ip().is_loopback())
            .unwrap_or(false)
    }

    /// Switches to TLS (after the server said go ahead to STARTTLS). The drill's nodes use
    /// self-signed certificates, so any certificate is accepted: this client tests
    /// availability, not authenticity.
    pub async fn start_tls(self) -> Result<Conn, DrillError> {
        let addr = self.addr;
        let stream = self.io.into_inner();
        let connector = tokio_rustls::TlsConnector::from(tls_config()?);
        let name = rustls::pki_types::ServerName::try_from("drill.test")
            .map_err(|e| client(format!("TLS server name: {e}")))?;
        let tls = tokio::time::timeout(REPLY_TIMEOUT, connector.connect(name, stream))
            .await
            .map_err(|_| client(format!("TLS handshake with {addr} timed out")))?
            .map_err(|e| client(format!("TLS handshake with {addr}: {e}")))?;
        Ok(Conn {
            io: BufStream::new(Box::new(tls)),
            addr,
        })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Writes and flushes.
    pub async fn send(&mut self, data: &[u8]) -> Result<(), DrillError> {
        let write = async {
            self.io.write_all(data).await?;
            self.io.flush().await
        };
        tokio::time::timeout(REPLY_TIMEOUT, write)
            .await
            .map_err(|_| client(format!("write to {} timed out", self.addr)))?
            .map_err(|e| client(format!("write to {}: {e}", self.addr)))
    }

    /// One line without its CRLF (or LF).
    pub async fn read_line(&mut self) -> Result<Vec<u8>, DrillError> {
        let mut line = Vec::with_capacity(128);
        let mut limited = (&mut self.io).take(MAX_LINE as u64);
        let read = limited.read_until(b'\n', &mut line);
        let n = tokio::time::timeout(REPLY_TIMEOUT, read)
            .await
            .map_err(|_| {
                client(format!(
                    "no reply from {} within {REPLY_TIMEOUT:?}",
                    self.addr
                ))
            })?
            .map_err(|e| client(format!("read from {}: {e}", self.addr)))?;
        if n == 0 {
            return Err(client(format!("{} closed the connection", self.addr)));
        }
        if line.last() != Some(&b'\n') {
            return Err(client(format!(
                "line from {} longer than {MAX_LINE} bytes",
                self.addr
            )));
        }
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok(line)
    }

    pub async fn read_exact(&mut self, n: usize) -> Result<Vec<u8>, DrillError> {
        if n > MAX_BODY {
            return Err(client(format!(
                "{} sent {n} bytes, over {MAX_BODY}",
                self.addr
            )));
        }
        let mut buf = vec![0u8; n];
        tokio::time::timeout(REPLY_TIMEOUT, self.io.read_exact(&mut buf))
            .await
            .map_err(|_| {
                client(format!(
                    "no data from {} within {REPLY_TIMEOUT:?}",
                    self.addr
                ))
            })?
            .map_err(|e| client(format!("read from {}: {e}", self.addr)))?;
        Ok(buf)
    }
}

/// Accepts any server certificate (the nodes' self-signed ones); signatures are still checked.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// rustls with the `ring` provider (never aws-lc), accepting the nodes' self-signed certificates.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, DrillError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| client(format!("TLS set-up: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Ok(Arc::new(config))
}
