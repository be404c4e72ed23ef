//! Certificates: reading an issued chain, turning it into a rustls key, the CSR and the
//! tls-alpn-01 challenge certificate (RFC 8737 §3).

use crate::AcmeError;
use rustls::pki_types::CertificateDer;
use rustls::sign::CertifiedKey;
use std::sync::Arc;

/// What status and renewal need from the leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafInfo {
    pub not_before: i64,
    pub not_after: i64,
    pub issuer: String,
    pub names: Vec<String>,
}

fn certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, AcmeError> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| AcmeError::Certificate(e.to_string()))?;
    if certs.is_empty() {
        return Err(AcmeError::Certificate(
            "the chain holds no certificate".into(),
        ));
    }
    Ok(certs)
}

/// Dates, issuer and names of the first certificate of a PEM chain.
pub fn leaf_info(chain_pem: &str) -> Result<LeafInfo, AcmeError> {
    let certs = certs(chain_pem)?;
    let (_, leaf) = x509_parser::parse_x509_certificate(certs[0].as_ref())
        .map_err(|e| AcmeError::Certificate(e.to_string()))?;
    let names = leaf
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(LeafInfo {
        not_before: leaf.validity().not_before.timestamp(),
        not_after: leaf.validity().not_after.timestamp(),
        issuer: leaf.issuer().to_string(),
        names,
    })
}

/// The chain and its PEM private key as rustls serves them (the key must match the leaf).
pub fn certified_key(chain_pem: &str, key_pem: &str) -> Result<Arc<CertifiedKey>, AcmeError> {
    let chain = certs(chain_pem)?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .map_err(|e| AcmeError::Certificate(e.to_string()))?
        .ok_or_else(|| AcmeError::Certificate("no private key".into()))?;
    // `CertifiedKey::new`, not `from_der`: the latter parses the leaf with webpki, which
    // refuses the critical acmeIdentifier extension of a tls-alpn-01 certificate.
    let signing = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| AcmeError::Certificate(e.to_string()))?;
    Ok(Arc::new(CertifiedKey::new(chain, signing)))
}

/// A fresh key pair (ECDSA P-256) and a CSR for `domains`: `(csr_der, key_pem)`.
pub fn csr(domains: &[String]) -> Result<(Vec<u8>, String), AcmeError> {
    let err = |e: rcgen::Error| AcmeError::Certificate(e.to_string());
    let mut params = rcgen::CertificateParams::new(domains.to_vec()).map_err(err)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let key = rcgen::KeyPair::generate().map_err(err)?;
    let csr = params.serialize_request(&key).map_err(err)?;
    Ok((csr.der().to_vec(), key.serialize_pem()))
}

/// The tls-alpn-01 certificate for `domain` (RFC 8737 §3): self-signed, the domain as its
/// only dNSName, and the critical id-pe-acmeIdentifier extension holding the SHA-256 digest
/// of the key authorization.
pub fn alpn_challenge_cert(
    domain: &str,
    key_auth_digest: &[u8],
) -> Result<Arc<CertifiedKey>, AcmeError> {
    let err = |e: rcgen::Error| AcmeError::Certificate(e.to_string());
    if key_auth_digest.len() != 32 {
        return Err(AcmeError::Certificate(
            "the key authorization digest is not SHA-256".into(),
        ));
    }
    let mut params = rcgen::CertificateParams::new(vec![domain.to_string()]).map_err(err)?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(key_auth_digest)];
    let key = rcgen::KeyPair::generate().map_err(err)?;
    let cert = params.self_signed(&key).map_err(err)?;
    certified_key(&cert.pem(), &key.serialize_pem())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_certificate_names_the_domain_and_carries_the_critical_digest() {
        let digest = [7u8; 32];
        let key = alpn_challenge_cert("mail.example.test", &digest).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(key.cert[0].as_ref()).unwrap();
        let ext = cert
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier extension");
        assert!(ext.critical, "RFC 8737 §3: the extension MUST be critical");
        // DER OCTET STRING of 32 bytes.
        assert_eq!(ext.value[..2], [0x04, 32]);
        assert_eq!(&ext.value[2..], &digest);
        let info = leaf_info(&pem_of(&key)).unwrap();
        assert_eq!(info.names, vec!["mail.example.test".to_string()]);
        assert!(alpn_challenge_cert("mail.example.test", &[1, 2]).is_err());
    }

    fn pem_of(key: &CertifiedKey) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(key.cert[0].as_ref());
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|l| std::str::from_utf8(l).unwrap())
            .collect();
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            lines.join("\n")
        )
    }

    #[test]
    fn csr_and_garbage() {
        let (der, key) = csr(&["a.example.test".into(), "b.example.test".into()]).unwrap();
        assert!(!der.is_empty());
        assert!(key.contains("PRIVATE KEY"));
        assert!(leaf_info("not a pem").is_err());
        assert!(certified_key("", "").is_err());
    }
}
