//! Named limits of the DAV server (documented in the README, "Calendar and contacts").

/// Largest calendar object or vCard a PUT may store (RFC 4791 §5.2.5 / RFC 6352 §6.2.3
/// `max-resource-size`). A larger `Content-Length` is refused before the body is read.
pub const MAX_RESOURCE_SIZE: usize = 1024 * 1024;
/// Largest XML request body (PROPFIND, REPORT, PROPPATCH, MKCOL).
pub const MAX_XML_BODY: usize = 256 * 1024;
/// Deepest element nesting of an XML request body.
pub const MAX_XML_DEPTH: usize = 32;
/// Most elements in an XML request body.
pub const MAX_XML_ELEMENTS: usize = 10_000;
/// Most hrefs in one calendar-multiget / addressbook-multiget REPORT.
pub const MAX_MULTIGET_HREFS: usize = 1000;
/// Most resources in one collection (a PUT of a new one beyond it gets 507).
pub const MAX_RESOURCES_PER_COLLECTION: usize = 100_000;
/// Most changes one sync-collection answer lists (then 507 on the request-URI, RFC 6578 §3.6).
pub const MAX_SYNC_CHANGES: usize = 5000;
/// A calendar-query time-range may span at most this many seconds (about 50 years);
/// wider ranges are refused with 403 `min-date-time`/`max-date-time` style error text.
pub const MAX_TIME_RANGE_SECS: i64 = 50 * 366 * 24 * 3600;
/// Earliest and latest instants a time-range may name (years 1900 and 2200).
pub const MIN_DATE_TIME: i64 = -2_208_988_800;
pub const MAX_DATE_TIME: i64 = 7_258_118_400;
/// Longest resource name (the last path segment) and collection name.
pub const MAX_NAME_LEN: usize = 128;
/// Most calendars or address books per account.
pub const MAX_COLLECTIONS: usize = 100;
/// Longest display name, colour or description a PROPPATCH may set.
pub const MAX_PROPERTY_LEN: usize = 4096;
/// Most instances of one calendar object a time-range test or expansion examines (RFC 4791
/// §9.9 asks for every instance; an RRULE like FREQ=SECONDLY would give millions). An RRULE
/// without end is examined only up to the range's end; an object that reaches this many
/// before the range is included in a calendar-query rather than lost.
pub const MAX_INSTANCES_PER_OBJECT: usize = 50_000;
