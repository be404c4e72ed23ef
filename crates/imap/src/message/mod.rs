//! Rendering stored messages for FETCH and matching them for SEARCH (RFC 9051 §7.5.2).
//! Pure functions over the raw RFC 5322 bytes; never panics on broken MIME.
//!
//! * [`mime`] — own light MIME tree over exact byte offsets (sections return stored bytes);
//! * [`envelope()`], [`body_structure()`] — FETCH ENVELOPE / BODY / BODYSTRUCTURE;
//! * [`section()`], [`partial()`], [`binary()`] — BODY[section]<partial>, BINARY[part];
//! * [`search_view()`], [`base_subject()`] — SEARCH / SORT / THREAD data;
//! * dates — INTERNALDATE formatting, APPEND / SEARCH date parsing.
//!
//! Line ends: CRLF and bare LF are both accepted; sizes and line counts describe the bytes
//! as stored (the store is expected to keep CRLF).

mod binary;
mod bodystructure;
mod date;
mod encode;
mod envelope;
mod fetch;
pub(crate) mod mime;
mod search;
mod section;

#[cfg(test)]
mod robustness;
#[cfg(test)]
mod samples;

pub use binary::{BinaryError, binary, binary_size};
pub use bodystructure::body_structure;
pub(crate) use date::days_from_civil;
pub use date::{format_internal_date, parse_date, parse_date_time};
pub use encode::{MAX_QUOTED_LEN, nstring, quoted_or_literal};
pub use envelope::envelope;
pub use fetch::{partial, section};
pub use mime::{MAX_MIME_DEPTH, MAX_MIME_PARTS};
pub use search::{SearchView, base_subject, base_subject_reply, search_view, search_view_owned};
pub use section::{Section, SectionText};
