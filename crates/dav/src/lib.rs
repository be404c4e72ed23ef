//! WebDAV, CalDAV (RFC 4791) and CardDAV (RFC 6352) on the account collections: a sans-I/O
//! core ([`core::handle`]) and its HTTP shell ([`http::router`]).

pub mod core;
pub mod expand;
pub mod http;
pub mod ical;
pub mod limits;
pub mod paths;
pub mod props;
pub mod range;
pub mod report;
pub mod store;
pub mod transfer;
pub mod uids;
pub mod xml;

pub use http::router;
pub use store::{create_defaults, ensure_defaults};
