//! The mail domain, written once above the engine contract ([`crate::engine::MailTx`]):
//! every backend runs these functions inside its own write transaction.

pub mod emails;
pub mod mailboxes;
