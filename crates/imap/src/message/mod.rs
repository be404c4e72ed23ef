//! Rendering stored messages for FETCH and matching them for SEARCH (RFC 9051 §7.5.2).
//! Pure functions over the raw RFC 5322 bytes; never panics on broken MIME.

mod section;

pub use section::{Section, SectionText};
