//! ENVELOPE (RFC 9051 §7.5.2). The renderer lives in `bulwark-core`: it runs once at
//! delivery (the result is stored with the message) and here for messages stored without
//! one, so both give the same bytes.

pub use bulwark_core::envelope::envelope;
pub(crate) use bulwark_core::envelope::{Address, parse_address_list, write_envelope};
