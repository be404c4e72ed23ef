//! The TLS acceptor of every listener: rustls, plus tls-alpn-01 (RFC 8737) while ACME is on.
//!
//! rustls fails a handshake whose client offers ALPN protocols none of which the server lists
//! (RFC 7301 §3.2 `no_application_protocol`), so `acme-tls/1` cannot simply be added to the
//! normal configuration: a mail client offering `imap` would be refused. Instead the
//! ClientHello is read first, and only a handshake offering `acme-tls/1` gets the ACME
//! configuration (RFC 8737 §3: the challenge certificate, that protocol only).

use rustls::ServerConfig;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;

/// The ALPN protocol name of tls-alpn-01 (RFC 8737 §6.2).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The TLS configuration for one `acme-tls/1` handshake, by its SNI name: the challenge
/// certificate while an order for that name is open (on this node or, through the store, on
/// another), else `None` and the handshake is refused.
pub trait AcmeAlpn: Send + Sync {
    fn config_for(
        &self,
        server_name: Option<String>,
    ) -> Pin<Box<dyn Future<Output = Option<Arc<ServerConfig>>> + Send + '_>>;
}

#[derive(Clone)]
pub struct TlsAcceptor {
    config: Arc<ServerConfig>,
    acme: Option<Arc<dyn AcmeAlpn>>,
}

impl From<Arc<ServerConfig>> for TlsAcceptor {
    fn from(config: Arc<ServerConfig>) -> TlsAcceptor {
        TlsAcceptor { config, acme: None }
    }
}

impl TlsAcceptor {
    /// `config` for every handshake, `acme` for those offering ALPN `acme-tls/1`.
    pub fn with_acme_alpn(config: Arc<ServerConfig>, acme: Arc<dyn AcmeAlpn>) -> TlsAcceptor {
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
        if !wants_acme {
            return start.into_stream(self.config.clone()).await;
        }
        let name = hello.server_name().map(str::to_ascii_lowercase);
        match acme.config_for(name).await {
            Some(config) => start.into_stream(config).await,
            None => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "acme-tls/1 handshake for a name with no open ACME order",
            )),
        }
    }
}
