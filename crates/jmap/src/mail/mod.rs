//! RFC 8621 data types over the store.

pub mod body;
pub mod changes;
pub mod email_get;
pub mod email_import;
pub mod email_query;
pub mod email_set;
pub mod mailbox;
pub mod query;
pub mod thread;
