//! Sieve mail filters (RFC 5228 with the registered extensions, through `sieve-rs`):
//!
//! * [`scripts`]: the account's scripts and which one is active, as items of the account
//!   collection `sieve` (every node and every protocol — ManageSieve, JMAP Sieve, the web
//!   client — sees the same), with the checks and limits every writer shares;
//! * [`filter`]: running the active script on a message being delivered, turned into what
//!   the delivery pipeline does with the account's copy (folders, flags, discard, reject,
//!   redirect, vacation).

pub mod filter;
pub mod limits;
pub mod scripts;

pub use filter::SieveFilter;
pub use scripts::{ScriptError, ScriptInfo};
