//! IMAP string encoding (RFC 9051 §4.3 strings, §9 grammar). It lives in `bulwark-core`
//! because the ENVELOPE stored at delivery is rendered with it.

pub use bulwark_core::imap_string::{MAX_QUOTED_LEN, nstring, quoted_or_literal};
pub(crate) use bulwark_core::imap_string::{write_nstring, write_string};
