//! The TLS acceptor of every listener: rustls, plus tls-alpn-01 (RFC 8737) while ACME is on.
//!
//! rustls fails a handshake whose client offers ALPN protocols none of which the server lists
//! (RFC 7301 §3.2 `no_application_protocol`), so `acme-tls/1` cannot simply be added to the
//! normal configuration: a mail client offering `imap` would be refused. Instead the
//! ClientHello is read first, and only a handshake offering `acme-tls/1` gets the ACME
//! configuration (RFC 8737 §3: the challenge certificate, that protocol only).

use rustls::ServerConfig;
use std::io;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;

/// The ALPN protocol name of tls-alpn-01 (RFC 8737 §6.2).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

#[derive(Clone)]
pub struct TlsAcceptor {
    config: Arc<ServerConfig>,
    acme: Option<Arc<ServerConfig>>,
}

impl From<Arc<ServerConfig>> for TlsAcceptor {
    fn from(config: Arc<ServerConfig>) -> TlsAcceptor {
        TlsAcceptor { config, acme: None }
    }
}

impl TlsAcceptor {
    /// `config` for every handshake, `acme` for those offering ALPN `acme-tls/1`.
    pub fn with_acme_alpn(config: Arc<ServerConfig>, acme: Arc<ServerConfig>) -> TlsAcceptor {
        TlsAcceptor {
            config,
            acme: Some(acme),
        }
    }

    pub async fn accept<IO>(&self, stream: IO) -> io::Result<TlsStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let Some(acme) = &self.acme else {
            return tokio_rustls::TlsAcceptor::from(self.config.clone())
                .accept(stream)
                .await;
        };
        let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream).await?;
        let hello = start.client_hello();
        let wants_acme = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        let config = if wants_acme { acme } else { &self.config };
        start.into_stream(config.clone()).await
    }
}
