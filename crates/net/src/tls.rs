//! TLS server configuration.

use crate::NetError;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Operator-provided certificate chain and key (PEM). Without them a self-signed certificate
/// for the hostname is generated on first start and reused afterwards.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// Installs rustls' `ring` crypto provider as the process default (idempotent).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Name of the generated certificate and key inside `data_dir`.
pub const SELF_SIGNED_CERT: &str = "tls/self-signed-cert.pem";
pub const SELF_SIGNED_KEY: &str = "tls/self-signed-key.pem";

/// Builds the server TLS configuration.
pub fn load_tls(
    files: &TlsFiles,
    data_dir: &Path,
    hostname: &str,
) -> Result<Arc<rustls::ServerConfig>, NetError> {
    install_crypto_provider();
    let (cert_path, key_path) = match (&files.cert, &files.key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => ensure_self_signed(data_dir, hostname)?,
    };
    let certs = read_certs(&cert_path)?;
    let key = read_key(&key_path)?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| NetError::Tls(e.to_string()))?;
    Ok(Arc::new(config))
}

fn read_file(path: &Path) -> Result<Vec<u8>, NetError> {
    std::fs::read(path).map_err(|source| NetError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, NetError> {
    let pem = read_file(path)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| NetError::Tls(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(NetError::NoCertificate(path.display().to_string()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, NetError> {
    let pem = read_file(path)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| NetError::Tls(format!("{}: {e}", path.display())))?
        .ok_or_else(|| NetError::NoPrivateKey(path.display().to_string()))
}

/// Generates the self-signed pair once; later starts reuse it so clients that pinned it keep working.
fn ensure_self_signed(data_dir: &Path, hostname: &str) -> Result<(PathBuf, PathBuf), NetError> {
    let cert_path = data_dir.join(SELF_SIGNED_CERT);
    let key_path = data_dir.join(SELF_SIGNED_KEY);
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    let names = vec![
        hostname.to_string(),
        "localhost".to_string(),
        "127.0.0.1".to_string(),
    ];
    let generated =
        rcgen::generate_simple_self_signed(names).map_err(|e| NetError::Generate(e.to_string()))?;
    let dir = cert_path.parent().unwrap_or(data_dir);
    std::fs::create_dir_all(dir).map_err(|source| NetError::Write {
        path: dir.display().to_string(),
        source,
    })?;
    write_private(&key_path, generated.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(&cert_path, generated.cert.pem()).map_err(|source| NetError::Write {
        path: cert_path.display().to_string(),
        source,
    })?;
    Ok((cert_path, key_path))
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), NetError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| NetError::Write {
            path: path.display().to_string(),
            source,
        })?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(|source| NetError::Write {
            path: path.display().to_string(),
            source,
        })
}

/// A client configuration that accepts any certificate — for tests and for opportunistic
/// STARTTLS to remote MXes (RFC 7435: encryption without authentication beats plaintext).
pub fn client_config_insecure() -> Arc<rustls::ClientConfig> {
    install_crypto_provider();
    let config = rustls::ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCert))
        .with_no_client_auth();
    Arc::new(config)
}

#[derive(Debug)]
struct AcceptAnyCert;

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_certificate_is_generated_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        load_tls(&TlsFiles::default(), dir.path(), "mail.example.test").unwrap();
        let first = std::fs::read(dir.path().join(SELF_SIGNED_CERT)).unwrap();
        load_tls(&TlsFiles::default(), dir.path(), "mail.example.test").unwrap();
        let second = std::fs::read(dir.path().join(SELF_SIGNED_CERT)).unwrap();
        assert_eq!(first, second);
    }

    #[test]
    fn missing_operator_certificate_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            cert: Some(dir.path().join("nope.pem")),
            key: Some(dir.path().join("k.pem")),
        };
        let err = load_tls(&files, dir.path(), "h").unwrap_err();
        assert!(err.to_string().contains("nope.pem"), "{err}");
    }
}
