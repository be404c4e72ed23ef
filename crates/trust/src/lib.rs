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

pub use checks::{Action, Checker, ChecksConfig};
pub use hook::TrustHook;
pub use sign::Signer;

#[cfg(test)]
mod testdns;
#[cfg(test)]
mod tests;
