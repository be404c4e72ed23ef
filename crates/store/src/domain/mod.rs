//! The mail domain, written once above the engine contract ([`crate::engine::WriteTx`]):
//! every backend runs these functions inside its own write transaction.

pub mod collections;
pub mod emails;
pub mod mailboxes;
