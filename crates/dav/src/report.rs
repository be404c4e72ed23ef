//! REPORT: calendar-multiget / addressbook-multiget (RFC 4791 §7.9, RFC 6352 §8.7),
//! sync-collection (RFC 6578 §3), calendar-query (RFC 4791 §7.8) and addressbook-query
//! (RFC 6352 §8.6).

use crate::core::{Outcome, Request, Response, User, body_xml, prop_request, stored};
use crate::expand::{self, DataShape, FreeBusy};
use crate::limits::*;
use crate::paths::{self, Target};
use crate::props::{PropRequest, Res, SYNC_TOKEN_PREFIX, multistatus, response_xml, sync_token};
use crate::range::{self, parse_date_time};
use crate::store::{DavStore, Kind};
use crate::xml::{self, CALDAV, CARDDAV, DAV, Element};
use bulwark_store::{CollectionItem, ModSeq, StoreError};

pub(crate) async fn report(
    store: &dyn DavStore,
    user: &User,
    target: &Target,
    req: &Request,
) -> Outcome {
    let Some(root) = body_xml(req)? else {
        return Ok(Response::text(400, "REPORT needs a body"));
    };
    let want = prop_request(
        root.children
            .iter()
            .find(|c| c.is(DAV, "prop") || c.is(DAV, "allprop") || c.is(DAV, "propname")),
    );
    let (kind, coll) = match target {
        Target::Collection(k, c) => (*k, c.clone()),
        Target::Object(k, c, _) if root.name.ends_with("multiget") => (*k, c.clone()),
        _ => {
            return Ok(Response::precondition(
                403,
                DAV,
                "supported-report",
                "reports are made on a calendar or address book",
            ));
        }
    };
    let shape = match data_shape(&root) {
        Ok(s) => s,
        Err(r) => return Ok(r),
    };
    match (root.ns.as_str(), root.name.as_str(), kind) {
        (CALDAV, "calendar-multiget", Kind::Calendar)
        | (CARDDAV, "addressbook-multiget", Kind::Addressbook) => {
            multiget(store, user, kind, &root, &want, shape).await
        }
        (CALDAV, "free-busy-query", Kind::Calendar) => {
            free_busy_query(store, user, &coll, &root).await
        }
        (DAV, "sync-collection", _) => {
            sync_collection(store, user, kind, &coll, &root, &want).await
        }
        (CALDAV, "calendar-query", Kind::Calendar) => {
            let filter = match CalendarFilter::parse(&root) {
                Ok(f) => f,
                Err(r) => return Ok(r),
            };
            query(store, user, kind, &coll, &want, shape, |o| {
                filter.matches(o)
            })
            .await
        }
        (CARDDAV, "addressbook-query", Kind::Addressbook) => {
            let filter = CardFilter::parse(&root);
            let shape = DataShape::AsStored;
            query(store, user, kind, &coll, &want, shape, |o| {
                filter.matches(&o.data)
            })
            .await
        }
        _ => Ok(Response::precondition(
            403,
            DAV,
            "supported-report",
            "this report is not supported on this collection",
        )),
    }
}

async fn multiget(
    store: &dyn DavStore,
    user: &User,
    kind: Kind,
    root: &Element,
    want: &PropRequest,
    shape: DataShape,
) -> Outcome {
    let hrefs: Vec<&str> = root
        .children
        .iter()
        .filter(|c| c.is(DAV, "href"))
        .map(|c| c.text.as_str())
        .collect();
    if hrefs.len() > MAX_MULTIGET_HREFS {
        return Ok(Response::precondition(
            403,
            DAV,
            "number-of-matches-within-limits",
            &format!("at most {MAX_MULTIGET_HREFS} hrefs per multiget"),
        ));
    }
    let mut body = String::new();
    for href in hrefs {
        let found = match paths::parse(paths::href_path(href), &user.username) {
            Ok(Target::Object(k, coll, name)) if k == kind => store
                .get(user.account, &k.items_collection(&coll), Some(&[name]))
                .await?
                .into_iter()
                .next()
                .map(|item| Res::Object {
                    kind: k,
                    coll,
                    item: shaped(item, shape),
                }),
            _ => None,
        };
        match found {
            Some(res) => body.push_str(&response_xml(&res, &user.username, want)),
            None => body.push_str(&status_response(href, "404 Not Found")),
        }
    }
    Ok(multistatus(&body))
}

fn status_response(href: &str, status: &str) -> String {
    format!(
        "<d:response><d:href>{}</d:href><d:status>HTTP/1.1 {status}</d:status></d:response>",
        xml::esc(href)
    )
}

fn invalid_token() -> Response {
    Response::precondition(
        403,
        DAV,
        "valid-sync-token",
        "the sync token is not valid (any more)",
    )
}

/// RFC 6578 §3.2: members changed since the token; deleted ones as 404 responses.
async fn sync_collection(
    store: &dyn DavStore,
    user: &User,
    kind: Kind,
    coll: &str,
    root: &Element,
    want: &PropRequest,
) -> Outcome {
    let account = user.account;
    let Some((meta, version)) = crate::core::load_meta(store, account, kind, coll).await? else {
        return Ok(Response::text(404, "no such collection"));
    };
    let token = root
        .child(DAV, "sync-token")
        .map(|t| t.text.trim())
        .unwrap_or("");
    // RFC 6578 §3.3: only sync-level 1 (the members, not their descendants) is offered.
    if root
        .child(DAV, "sync-level")
        .is_some_and(|l| l.text.trim() != "1")
    {
        return Ok(Response::text(403, "only sync-level 1 is supported"));
    }
    let collection = kind.items_collection(coll);
    let current = store.state(account, &collection).await?.max(version);
    let since = if token.is_empty() {
        None
    } else {
        match token
            .strip_prefix(SYNC_TOKEN_PREFIX)
            .and_then(|n| n.parse::<u64>().ok())
        {
            Some(n) if n <= current.0 => Some(ModSeq(n)),
            _ => return Ok(invalid_token()),
        }
    };
    let _ = meta;
    let mut body = String::new();
    let new_token = match since {
        None => {
            for item in store.get(account, &collection, None).await? {
                let res = Res::Object {
                    kind,
                    coll: coll.to_string(),
                    item,
                };
                body.push_str(&response_xml(&res, &user.username, want));
            }
            current
        }
        Some(since) => {
            let changes = match store
                .changes(account, &collection, since, MAX_SYNC_CHANGES)
                .await
            {
                Ok(c) => c,
                Err(StoreError::CannotCalculateChanges(_)) => return Ok(invalid_token()),
                Err(e) => return Err(e.into()),
            };
            let changed: Vec<String> = changes
                .created
                .iter()
                .chain(changes.updated.iter())
                .cloned()
                .collect();
            if !changed.is_empty() {
                for item in store.get(account, &collection, Some(&changed)).await? {
                    let res = Res::Object {
                        kind,
                        coll: coll.to_string(),
                        item,
                    };
                    body.push_str(&response_xml(&res, &user.username, want));
                }
            }
            for gone in &changes.destroyed {
                let href = paths::object(kind, &user.username, coll, gone);
                body.push_str(&status_response(&href, "404 Not Found"));
            }
            if changes.has_more {
                // RFC 6578 §3.6: truncated; the client asks again with the new token.
                let href = paths::collection(kind, &user.username, coll);
                body.push_str(&status_response(&href, "507 Insufficient Storage"));
                changes.new_state
            } else {
                current.max(changes.new_state)
            }
        }
    };
    body.push_str(&format!(
        "<d:sync-token>{}</d:sync-token>",
        xml::esc(&sync_token(new_token))
    ));
    Ok(multistatus(&body))
}

async fn query(
    store: &dyn DavStore,
    user: &User,
    kind: Kind,
    coll: &str,
    want: &PropRequest,
    shape: DataShape,
    matches: impl Fn(&crate::store::StoredObject) -> bool,
) -> Outcome {
    if crate::core::load_meta(store, user.account, kind, coll)
        .await?
        .is_none()
    {
        return Ok(Response::text(404, "no such collection"));
    }
    let mut body = String::new();
    for item in store
        .get(user.account, &kind.items_collection(coll), None)
        .await?
    {
        if matches(&stored(&item)) {
            let res = Res::Object {
                kind,
                coll: coll.to_string(),
                item: shaped(item, shape),
            };
            body.push_str(&response_xml(&res, &user.username, want));
        }
    }
    Ok(multistatus(&body))
}

/// RFC 4791 §9.6.5/§9.6.6: `calendar-data` with `expand` or `limit-recurrence-set`.
fn data_shape(root: &Element) -> Result<DataShape, Response> {
    let Some(data) = root
        .child(DAV, "prop")
        .and_then(|p| p.child(CALDAV, "calendar-data"))
    else {
        return Ok(DataShape::AsStored);
    };
    if let Some(e) = data.child(CALDAV, "expand") {
        let (s, e) = time_range(e)?;
        return Ok(DataShape::Expand(s, e));
    }
    if let Some(l) = data.child(CALDAV, "limit-recurrence-set") {
        let (s, e) = time_range(l)?;
        return Ok(DataShape::LimitRecurrenceSet(s, e));
    }
    Ok(DataShape::AsStored)
}

/// The item with its calendar-data in the asked shape.
fn shaped(item: CollectionItem, shape: DataShape) -> CollectionItem {
    if shape == DataShape::AsStored {
        return item;
    }
    let mut obj = stored(&item);
    obj.data = expand::shape(&obj.data, shape);
    match serde_json::to_string(&obj) {
        Ok(value) => CollectionItem { value, ..item },
        Err(_) => item,
    }
}

/// RFC 4791 §7.10: the busy time of the calendar's events in the range, as one VFREEBUSY.
async fn free_busy_query(store: &dyn DavStore, user: &User, coll: &str, root: &Element) -> Outcome {
    let Some(tr) = root.child(CALDAV, "time-range") else {
        return Ok(Response::precondition(
            403,
            CALDAV,
            "valid-filter",
            "free-busy-query needs a time-range",
        ));
    };
    let (start, end) = match time_range(tr) {
        Ok(r) => r,
        Err(r) => return Ok(r),
    };
    if crate::core::load_meta(store, user.account, Kind::Calendar, coll)
        .await?
        .is_none()
    {
        return Ok(Response::text(404, "no such collection"));
    }
    let mut fb = FreeBusy::default();
    for item in store
        .get(user.account, &Kind::Calendar.items_collection(coll), None)
        .await?
    {
        let obj = stored(&item);
        if obj.component.as_deref() == Some("VEVENT")
            && range::object_overlaps(obj.span(), &obj.data, start, end)
        {
            fb.add(&obj.data, start, end);
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut r = Response::new(200).header("Content-Type", Kind::Calendar.content_type());
    r.body = fb.to_ical(start, end, now).into_bytes();
    Ok(r)
}

/// RFC 4791 §9.7: `VCALENDAR` › one component filter, optionally with a time-range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarFilter {
    pub component: Option<String>,
    pub range: Option<(i64, i64)>,
}

impl CalendarFilter {
    pub fn parse(root: &Element) -> Result<CalendarFilter, Response> {
        let mut f = CalendarFilter {
            component: None,
            range: None,
        };
        let Some(cal) = root
            .child(CALDAV, "filter")
            .and_then(|f| f.child(CALDAV, "comp-filter"))
        else {
            // RFC 4791 §7.8: the filter is required; without one every object matches.
            return Ok(f);
        };
        let Some(comp) = cal.child(CALDAV, "comp-filter") else {
            return Ok(f);
        };
        f.component = comp.attr("name").map(str::to_ascii_uppercase);
        if let Some(tr) = comp.child(CALDAV, "time-range") {
            f.range = Some(time_range(tr)?);
        }
        Ok(f)
    }

    pub fn matches(&self, o: &crate::store::StoredObject) -> bool {
        if let Some(c) = &self.component
            && o.component.as_deref() != Some(c.as_str())
        {
            return false;
        }
        match self.range {
            None => true,
            Some((start, end)) => range::object_overlaps(o.span(), &o.data, start, end),
        }
    }
}

/// RFC 4791 §9.9: a `time-range` element's `start` and `end` (UTC date-times; either may
/// be missing), within [`MIN_DATE_TIME`]..[`MAX_DATE_TIME`].
pub(crate) fn time_range(tr: &Element) -> Result<(i64, i64), Response> {
    let bound = |name: &str, default: i64| -> Result<i64, Response> {
        match tr.attr(name) {
            None => Ok(default),
            Some(v) if v.ends_with('Z') => parse_date_time(v).ok_or_else(|| {
                Response::precondition(403, CALDAV, "valid-filter", "bad time-range date")
            }),
            Some(_) => Err(Response::precondition(
                403,
                CALDAV,
                "valid-filter",
                "time-range bounds are UTC date-times (…Z)",
            )),
        }
    };
    let start = bound("start", MIN_DATE_TIME)?;
    let end = bound("end", MAX_DATE_TIME)?;
    if start < MIN_DATE_TIME {
        return Err(Response::precondition(
            403,
            CALDAV,
            "min-date-time",
            "time-range starts before 1900",
        ));
    }
    if end > MAX_DATE_TIME {
        return Err(Response::precondition(
            403,
            CALDAV,
            "max-date-time",
            "time-range ends after 2200",
        ));
    }
    if end <= start {
        return Err(Response::precondition(
            403,
            CALDAV,
            "valid-filter",
            "time-range end is not after its start",
        ));
    }
    Ok((start, end))
}

/// RFC 6352 §10.5: prop-filters (anyof by default, or allof) with text-match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardFilter {
    pub all: bool,
    pub props: Vec<PropFilter>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropFilter {
    pub name: String,
    pub not_defined: bool,
    /// (text lowercased, match-type, negate)
    pub text: Option<(String, String, bool)>,
}

impl CardFilter {
    pub fn parse(root: &Element) -> CardFilter {
        let filter = root.child(CARDDAV, "filter");
        let all = filter.and_then(|f| f.attr("test")) == Some("allof");
        let props = filter
            .map(|f| {
                f.children
                    .iter()
                    .filter(|c| c.is(CARDDAV, "prop-filter"))
                    .map(|p| PropFilter {
                        name: p.attr("name").unwrap_or("").to_ascii_uppercase(),
                        not_defined: p.child(CARDDAV, "is-not-defined").is_some(),
                        text: p.child(CARDDAV, "text-match").map(|t| {
                            (
                                t.text.to_lowercase(),
                                t.attr("match-type").unwrap_or("contains").to_string(),
                                t.attr("negate-condition") == Some("yes"),
                            )
                        }),
                    })
                    .collect()
            })
            .unwrap_or_default();
        CardFilter { all, props }
    }

    pub fn matches(&self, vcard: &str) -> bool {
        if self.props.is_empty() {
            return true;
        }
        let lines = card_values(vcard);
        let one = |p: &PropFilter| {
            let values: Vec<&String> = lines
                .iter()
                .filter(|(n, _)| *n == p.name)
                .map(|(_, v)| v)
                .collect();
            if p.not_defined {
                return values.is_empty();
            }
            let Some((text, how, negate)) = &p.text else {
                return !values.is_empty();
            };
            // i;unicode-casemap approximated by lowercasing (RFC 6352 §8.3).
            let hit = values.iter().any(|v| {
                let v = v.to_lowercase();
                match how.as_str() {
                    "equals" => v == *text,
                    "starts-with" => v.starts_with(text.as_str()),
                    "ends-with" => v.ends_with(text.as_str()),
                    _ => v.contains(text.as_str()),
                }
            });
            hit != *negate
        };
        if self.all {
            self.props.iter().all(one)
        } else {
            self.props.iter().any(one)
        }
    }
}

/// `(NAME, value)` of each unfolded vCard line, the group prefix (`item1.`) dropped.
fn card_values(text: &str) -> Vec<(String, String)> {
    let mut lines: Vec<String> = Vec::new();
    for raw in text.split('\n') {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(rest) = raw.strip_prefix([' ', '\t']) {
            if let Some(last) = lines.last_mut() {
                last.push_str(rest);
            }
        } else if !raw.is_empty() {
            lines.push(raw.to_string());
        }
    }
    lines
        .into_iter()
        .filter_map(|l| {
            let (head, value) = l.split_once(':')?;
            let name = head.split(';').next().unwrap_or(head);
            let name = name.rsplit('.').next().unwrap_or(name).to_ascii_uppercase();
            Some((name, value.to_string()))
        })
        .collect()
}
