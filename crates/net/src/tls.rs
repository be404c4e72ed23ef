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

/// How long a generated self-signed certificate is valid (a normal period, like a public
/// CA's certificates, instead of rcgen's default 1975–4096).
pub const SELF_SIGNED_VALID_DAYS: i64 = 397;
/// A generated certificate this close to its end is replaced at the next start.
const SELF_SIGNED_RENEW_DAYS: i64 = 30;

/// Generates the self-signed pair once; later starts reuse it so clients that pinned it keep
/// working — until it nears its end, then a new one is made (and logged).
fn ensure_self_signed(data_dir: &Path, hostname: &str) -> Result<(PathBuf, PathBuf), NetError> {
    let cert_path = data_dir.join(SELF_SIGNED_CERT);
    let key_path = data_dir.join(SELF_SIGNED_KEY);
    if cert_path.exists() && key_path.exists() {
        // The file's age says when it was made: nothing else writes it.
        let age_days = std::fs::metadata(&cert_path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .map_or(0, |d| {
                i64::try_from(d.as_secs() / 86_400).unwrap_or(i64::MAX)
            });
        if age_days < SELF_SIGNED_VALID_DAYS - SELF_SIGNED_RENEW_DAYS {
            return Ok((cert_path, key_path));
        }
        tracing::warn!(
            path = %cert_path.display(),
            age_days,
            "the self-signed certificate is near its end; generating a new one"
        );
    }
    let names = vec![
        hostname.to_string(),
        "localhost".to_string(),
        "127.0.0.1".to_string(),
    ];
    let generated = generate_self_signed(hostname, names)?;
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

/// A certificate for `names` whose subject is `CN=hostname`, valid from yesterday (clock
/// skew) for [`SELF_SIGNED_VALID_DAYS`].
fn generate_self_signed(
    hostname: &str,
    names: Vec<String>,
) -> Result<rcgen::CertifiedKey<rcgen::KeyPair>, NetError> {
    let err = |e: rcgen::Error| NetError::Generate(e.to_string());
    let mut params = rcgen::CertificateParams::new(names).map_err(err)?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, hostname);
    dn.push(rcgen::DnType::OrganizationName, "Bulwark (self-signed)");
    params.distinguished_name = dn;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(SELF_SIGNED_VALID_DAYS);
    let signing_key = rcgen::KeyPair::generate().map_err(err)?;
    let cert = params.self_signed(&signing_key).map_err(err)?;
    Ok(rcgen::CertifiedKey { cert, signing_key })
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

/// A client configuration that checks certificates (WebPKI, the server name): the system's
/// roots plus the PEM certificates of `extra_roots` (a private CA). For outbound SMTP where a
/// policy (MTA-STS, RFC 8461) demands authenticated TLS, and for fetching those policies.
pub fn client_config_verified(
    extra_roots: Option<&Path>,
) -> Result<Arc<rustls::ClientConfig>, NetError> {
    let mut extra = Vec::new();
    if let Some(path) = extra_roots {
        let pem = std::fs::read(path).map_err(|source| NetError::Read {
            path: path.display().to_string(),
            source,
        })?;
        extra.extend(rustls_pemfile::certs(&mut pem.as_slice()).flatten());
    }
    Ok(client_config_with_roots(&extra))
}

/// [`client_config_verified`] with the system's roots only (it cannot fail).
pub fn client_config_system_roots() -> Arc<rustls::ClientConfig> {
    client_config_with_roots(&[])
}

/// A certificate-checking client configuration trusting the system's roots and `extra`.
pub fn client_config_with_roots(
    extra: &[rustls::pki_types::CertificateDer<'static>],
) -> Arc<rustls::ClientConfig> {
    install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    for cert in extra {
        let _ = roots.add(cert.clone());
    }
    Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
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
    fn self_signed_certificate_names_the_host_and_is_valid_for_a_normal_period() {
        let dir = tempfile::tempdir().unwrap();
        load_tls(&TlsFiles::default(), dir.path(), "mail.example.test").unwrap();
        let path = dir.path().join(SELF_SIGNED_CERT);
        // Read back with openssl, an independent parser.
        let out = std::process::Command::new("openssl")
            .args(["x509", "-noout", "-subject", "-enddate", "-in"])
            .arg(&path)
            .output();
        let Ok(out) = out else {
            return; // no openssl on this machine
        };
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("CN = mail.example.test") || text.contains("CN=mail.example.test"),
            "{text}"
        );
        let end = text
            .lines()
            .find_map(|l| l.strip_prefix("notAfter="))
            .expect("notAfter");
        let year: i32 = end.split_whitespace().nth(3).unwrap().parse().unwrap();
        let this_year = time::OffsetDateTime::now_utc().year();
        assert!(
            (this_year..=this_year + 2).contains(&year),
            "ends {end}, not in 4096"
        );
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
