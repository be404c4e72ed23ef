//! Trust on the open internet (issue 16): inbound SPF (RFC 7208), DKIM (RFC 6376), DMARC
//! (RFC 7489) and reverse-DNS checks written as one `Authentication-Results` field
//! (RFC 8601); outbound DKIM signing with keys shared by every node through the store; the
//! DNS records a domain needs (`bulwark domain dns`). The checks and the signatures
//! themselves are mail-auth's; every DNS question goes through the node's resolver
//! (`bulwark-dns`).
//!
//! Both run as one stage of the delivery pipeline ([`TrustHook`], a
//! [`bulwark_core::DeliveryHook`]): mail from an unauthenticated SMTP client is checked,
//! mail from an authenticated one (or made by this server for remote recipients) is signed.

pub mod checks;
pub mod hook;
pub mod keys;
pub mod records;
pub mod sign;

/// Every parser the checks feed hostile bytes to, for the fuzz target `trust_parsers`:
/// mail-auth's message parser (with its DKIM-Signature fields), its DKIM-Signature, SPF,
/// DKIM key and DMARC record parsers, and our tag readers of `domain dns --check`.
pub fn fuzz_parsers(data: &[u8]) {
    use mail_auth::common::parse::TxtRecordParser;
    let _ = mail_auth::AuthenticatedMessage::parse(data);
    let _ = mail_auth::dkim::Signature::parse(data);
    let _ = mail_auth::spf::Spf::parse(data);
    let _ = mail_auth::common::verify::DomainKey::parse(data);
    let _ = mail_auth::dmarc::Dmarc::parse(data);
    let text = String::from_utf8_lossy(data);
    let _ = records::has_tag(&text, "v=spf1");
    let _ = records::tag_value(&text, "p");
}

pub use checks::{Action, Checker, ChecksConfig};
pub use hook::TrustHook;
pub use sign::Signer;

#[cfg(test)]
mod testdns;
#[cfg(test)]
mod tests;
