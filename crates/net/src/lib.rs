//! Network plumbing shared by every listener: TLS configuration (operator-provided PEM files
//! or a self-signed certificate generated once and kept in `data_dir`), a boxed stream type
//! so sessions can upgrade to TLS in place (STARTTLS), per-IP connection limits, the
//! file-descriptor headroom every listener shares, and the memory budget for message bodies
//! being received ([`MemoryBudget`]).

mod acceptor;
mod budget;
pub mod fd;
mod limits;
mod tls;

pub use budget::{MemoryBudget, Reservation};
pub use limits::{ConnectionGuard, ConnectionLimiter, FdBudget, IpNet};
pub use tls::{
    TlsFiles, client_config_insecure, client_config_system_roots, client_config_verified,
    client_config_with_roots, install_crypto_provider, load_tls,
};

use tokio::io::{AsyncRead, AsyncWrite};

/// A bidirectional byte stream: plain TCP or TLS over TCP.
pub trait AsyncStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> AsyncStream for T {}

/// A boxed [`AsyncStream`], so a session can swap plain TCP for TLS after STARTTLS.
pub type BoxedStream = Box<dyn AsyncStream>;

pub use acceptor::{ACME_TLS_ALPN, AcmeAlpn, TlsAcceptor};

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("no certificate found in {0}")]
    NoCertificate(String),
    #[error("no private key found in {0}")]
    NoPrivateKey(String),
    #[error("TLS configuration rejected: {0}")]
    Tls(String),
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(String),
}
