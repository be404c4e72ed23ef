//! The sans-I/O protocol core: a request (method, path, the headers that matter, body bytes)
//! in, a response (status, headers, body) out. The store is reached through [`DavStore`].

use crate::limits::*;
use crate::paths::{self, PathError, Target};
use crate::props::{self, PropRequest, Res};
use crate::store::{CollectionMeta, DavStore, Kind, StoredObject, ensure_defaults};
use crate::xml::{self, CALDAV, CARDDAV, DAV, Element, ICAL};
use crate::{ical, report, uids};
use bulwark_store::{AccountId, CollectionItem, Expect, ItemWrite, ModSeq, StoreError};

/// The authenticated user.
#[derive(Debug, Clone)]
pub struct User {
    pub account: AccountId,
    /// The login name (primary address); the `{user}` of every path.
    pub username: String,
}

/// A request, as the HTTP shell hands it over.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// Percent-encoded path, without the query.
    pub path: String,
    pub depth: Option<String>,
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }
    pub fn xml(status: u16, body: String) -> Response {
        let mut r = Response::new(status).header("Content-Type", "application/xml; charset=utf-8");
        r.body = format!("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n{body}").into_bytes();
        r
    }
    pub fn text(status: u16, text: &str) -> Response {
        let mut r = Response::new(status).header("Content-Type", "text/plain; charset=utf-8");
        r.body = text.as_bytes().to_vec();
        r
    }
    /// RFC 4918 §16: an error with a precondition element, e.g. `(CALDAV, "valid-calendar-data")`.
    pub fn precondition(status: u16, ns: &str, name: &str, detail: &str) -> Response {
        let inner = xml::element(ns, name, "");
        Response::xml(
            status,
            format!(
                "<d:error {}>{inner}<d:responsedescription>{}</d:responsedescription></d:error>",
                xml::NAMESPACES,
                xml::esc(detail)
            ),
        )
    }
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How a request failed before it produced its own answer.
pub(crate) enum Fail {
    Store(StoreError),
    Answer(Response),
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Fail {
        Fail::Store(e)
    }
}

pub(crate) type Outcome = Result<Response, Fail>;

/// Seconds a client is told to wait after a store outage.
pub const RETRY_AFTER_SECS: u32 = 5;

/// Answers one request.
pub async fn handle(store: &dyn DavStore, user: &User, req: Request) -> Response {
    match dispatch(store, user, &req).await {
        Ok(r) | Err(Fail::Answer(r)) => r,
        Err(Fail::Store(e)) => store_error(e),
    }
}

/// Maps a store failure: an outage is 503 with Retry-After (never a hang), a lost
/// compare-and-set 412.
pub fn store_error(e: StoreError) -> Response {
    match e {
        StoreError::Unavailable(_) => Response::text(503, "the store is unavailable, retry later")
            .header("Retry-After", RETRY_AFTER_SECS.to_string()),
        StoreError::Conflict(_) => Response::text(412, "the resource changed meanwhile"),
        StoreError::NotFound(_) => Response::text(404, "not found"),
        StoreError::Invalid(m) => Response::text(400, &m),
        other => {
            tracing::warn!(error = %other, "dav: store error");
            Response::text(500, "internal error")
        }
    }
}

pub(crate) fn answer(r: Response) -> Fail {
    Fail::Answer(r)
}

async fn dispatch(store: &dyn DavStore, user: &User, req: &Request) -> Outcome {
    let target = match paths::parse(&req.path, &user.username) {
        Ok(t) => t,
        // Another user's path is answered like one that does not exist: nothing is learned.
        Err(PathError::NotFound | PathError::OtherUser) => {
            return Ok(Response::text(404, "no such resource"));
        }
    };
    if !matches!(target, Target::Object(..)) || req.method == "PUT" {
        ensure_defaults(store, user.account).await?;
    }
    match req.method.as_str() {
        "OPTIONS" => Ok(options()),
        "PROPFIND" => props::propfind(store, user, &target, req).await,
        "PROPPATCH" => props::proppatch(store, user, &target, req).await,
        "MKCALENDAR" => mkcol(store, user, &target, req, Some(Kind::Calendar)).await,
        "MKCOL" => mkcol(store, user, &target, req, None).await,
        "GET" | "HEAD" => get(store, user, &target, req.method == "HEAD").await,
        "PUT" => put(store, user, &target, req).await,
        "DELETE" => delete(store, user, &target, req).await,
        "REPORT" => report::report(store, user, &target, req).await,
        _ => Ok(Response::text(405, "method not allowed").header("Allow", ALLOW)),
    }
}

const ALLOW: &str =
    "OPTIONS, GET, HEAD, PUT, DELETE, PROPFIND, PROPPATCH, MKCOL, MKCALENDAR, REPORT";

/// RFC 4791 §5.1, RFC 6352 §6.1: the compliance classes.
fn options() -> Response {
    Response::new(200)
        .header("DAV", "1, 3, calendar-access, addressbook, extended-mkcol")
        .header("Allow", ALLOW)
}

/// Parses an XML body (a missing body is `None`).
pub(crate) fn body_xml(req: &Request) -> Result<Option<Element>, Fail> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if req.body.len() > MAX_XML_BODY {
        return Err(answer(Response::text(413, "the XML body is too large")));
    }
    xml::parse(&req.body)
        .map(Some)
        .map_err(|e| answer(Response::text(400, &e.to_string())))
}

/// The calendar's / address book's meta item, if it exists.
pub(crate) async fn load_meta(
    store: &dyn DavStore,
    account: AccountId,
    kind: Kind,
    id: &str,
) -> Result<Option<(CollectionMeta, ModSeq)>, Fail> {
    let items = store
        .get(account, kind.meta_collection(), Some(&[id.to_string()]))
        .await?;
    Ok(items.into_iter().next().map(|i| {
        let meta = serde_json::from_str(&i.value).unwrap_or_default();
        (meta, i.version)
    }))
}

/// All calendars / address books of the account.
pub(crate) async fn list_meta(
    store: &dyn DavStore,
    account: AccountId,
    kind: Kind,
) -> Result<Vec<(String, CollectionMeta, ModSeq)>, Fail> {
    let items = store.get(account, kind.meta_collection(), None).await?;
    Ok(items
        .into_iter()
        .map(|i| {
            let meta = serde_json::from_str(&i.value).unwrap_or_default();
            (i.id, meta, i.version)
        })
        .collect())
}

/// A collection's state (ctag, sync token): the newest of its meta item and its resources.
pub(crate) async fn collection_state(
    store: &dyn DavStore,
    account: AccountId,
    kind: Kind,
    id: &str,
    meta_version: ModSeq,
) -> Result<ModSeq, Fail> {
    let items = store.state(account, &kind.items_collection(id)).await?;
    Ok(items.max(meta_version))
}

pub(crate) fn etag(version: ModSeq) -> String {
    format!("\"{}\"", version.0)
}

pub(crate) fn stored(item: &CollectionItem) -> StoredObject {
    serde_json::from_str(&item.value).unwrap_or_default()
}

async fn require_collection(
    store: &dyn DavStore,
    account: AccountId,
    kind: Kind,
    id: &str,
) -> Result<(CollectionMeta, ModSeq), Fail> {
    load_meta(store, account, kind, id)
        .await?
        .ok_or_else(|| answer(Response::text(409, "the collection does not exist")))
}

/// MKCALENDAR (RFC 4791 §5.3.1) and extended MKCOL (RFC 5689) for calendars and address books.
async fn mkcol(
    store: &dyn DavStore,
    user: &User,
    target: &Target,
    req: &Request,
    forced: Option<Kind>,
) -> Outcome {
    let Target::Collection(kind, id) = target else {
        return Ok(Response::text(
            405,
            "a calendar or address book is made below its home",
        ));
    };
    let kind = *kind;
    if forced.is_some_and(|k| k != kind) {
        return Ok(Response::text(
            403,
            "MKCALENDAR makes calendars under /dav/calendars/",
        ));
    }
    let mut meta = CollectionMeta {
        displayname: id.clone(),
        ..CollectionMeta::default()
    };
    if let Some(root) = body_xml(req)? {
        let want_root = if forced.is_some() {
            (CALDAV, "mkcalendar")
        } else {
            (DAV, "mkcol")
        };
        if !root.is(want_root.0, want_root.1) {
            return Ok(Response::text(400, "unexpected body element"));
        }
        for prop in root
            .children
            .iter()
            .filter(|s| s.is(DAV, "set"))
            .filter_map(|s| s.child(DAV, "prop"))
            .flat_map(|p| p.children.iter())
        {
            match (prop.ns.as_str(), prop.name.as_str()) {
                (DAV, "resourcetype") => {
                    let wanted = match kind {
                        Kind::Calendar => prop.child(CALDAV, "calendar").is_some(),
                        Kind::Addressbook => prop.child(CARDDAV, "addressbook").is_some(),
                    };
                    if !wanted {
                        // RFC 5689 §3.3: a resource type the server cannot make.
                        return Ok(Response::precondition(
                            403,
                            DAV,
                            "valid-resourcetype",
                            "only calendars and address books can be made here",
                        ));
                    }
                }
                (DAV, "displayname") => meta.displayname = bounded(&prop.text)?,
                (CALDAV, "calendar-description") | (CARDDAV, "addressbook-description") => {
                    meta.description = Some(bounded(&prop.text)?)
                }
                (ICAL, "calendar-color") => meta.color = Some(bounded(&prop.text)?),
                (CALDAV, "supported-calendar-component-set") => {
                    meta.components = prop
                        .children
                        .iter()
                        .filter(|c| c.is(CALDAV, "comp"))
                        .filter_map(|c| c.attr("name"))
                        .map(str::to_ascii_uppercase)
                        .collect();
                }
                _ => {}
            }
        }
    }
    if list_meta(store, user.account, kind).await?.len() >= MAX_COLLECTIONS {
        return Ok(Response::text(507, "too many collections"));
    }
    // Resources a half-finished DELETE of an older collection of that name left behind.
    purge_items(store, user.account, kind, id).await?;
    let value = serde_json::to_string(&meta)
        .map_err(|e| Fail::Store(StoreError::Internal(e.to_string())))?;
    let write = ItemWrite::put(kind.meta_collection(), id, Expect::Absent, value);
    match store
        .write(user.account, vec![write, uids::marker(kind, id)])
        .await
    {
        Ok(_) => Ok(Response::new(201)),
        // RFC 4918 §9.3.1: MKCOL on an existing resource is 405.
        Err(StoreError::Conflict(_)) => Ok(Response::text(405, "the collection exists")),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn bounded(text: &str) -> Result<String, Fail> {
    if text.len() > MAX_PROPERTY_LEN {
        return Err(answer(Response::text(413, "property value too long")));
    }
    Ok(text.trim().to_string())
}

/// Deletes every resource of a collection and its UID index, in batches the store takes.
async fn purge_items(
    store: &dyn DavStore,
    account: AccountId,
    kind: Kind,
    id: &str,
) -> Result<(), Fail> {
    for collection in [kind.items_collection(id), kind.uids_collection(id)] {
        let items = store.get(account, &collection, None).await?;
        for chunk in items.chunks(bulwark_store::collections::MAX_WRITES) {
            let writes = chunk
                .iter()
                .map(|i| ItemWrite::delete(&collection, &i.id, Expect::Version(i.version)))
                .collect();
            store.write(account, writes).await?;
        }
    }
    Ok(())
}

async fn get_object(
    store: &dyn DavStore,
    account: AccountId,
    kind: Kind,
    coll: &str,
    name: &str,
) -> Result<Option<CollectionItem>, Fail> {
    let items = store
        .get(
            account,
            &kind.items_collection(coll),
            Some(&[name.to_string()]),
        )
        .await?;
    Ok(items.into_iter().next())
}

async fn get(store: &dyn DavStore, user: &User, target: &Target, head: bool) -> Outcome {
    let Target::Object(kind, coll, name) = target else {
        return Ok(Response::text(
            405,
            "collections have no GET body; use PROPFIND",
        ));
    };
    let Some(item) = get_object(store, user.account, *kind, coll, name).await? else {
        return Ok(Response::text(404, "no such resource"));
    };
    let obj = stored(&item);
    let mut r = Response::new(200)
        .header("Content-Type", kind.content_type())
        .header("ETag", etag(item.version));
    if head {
        r = r.header("Content-Length", obj.data.len().to_string());
    } else {
        r.body = obj.data.into_bytes();
    }
    Ok(r)
}

/// RFC 7232 §3.1/§3.2 against the current version (`None`: the resource does not exist).
fn preconditions_hold(req: &Request, current: Option<ModSeq>) -> bool {
    if let Some(inm) = &req.if_none_match {
        let inm = inm.trim();
        if inm == "*" && current.is_some() {
            return false;
        }
        if let Some(v) = current
            && inm
                .split(',')
                .any(|t| t.trim().trim_start_matches("W/") == etag(v))
        {
            return false;
        }
    }
    if let Some(im) = &req.if_match {
        let Some(v) = current else { return false };
        let im = im.trim();
        if im != "*" && !im.split(',').any(|t| t.trim() == etag(v)) {
            return false;
        }
    }
    true
}

/// PUT of a calendar object (RFC 4791 §5.3.2) or vCard (RFC 6352 §6.3.2).
async fn put(store: &dyn DavStore, user: &User, target: &Target, req: &Request) -> Outcome {
    let Target::Object(kind, coll, name) = target else {
        return Ok(Response::text(
            405,
            "PUT stores a resource inside a calendar or address book",
        ));
    };
    let kind = *kind;
    let (ns, valid) = match kind {
        Kind::Calendar => (CALDAV, "valid-calendar-data"),
        Kind::Addressbook => (CARDDAV, "valid-address-data"),
    };
    if req.body.len() > MAX_RESOURCE_SIZE {
        return Ok(Response::precondition(
            413,
            ns,
            "max-resource-size",
            "the resource is too large",
        ));
    }
    let Ok(text) = std::str::from_utf8(&req.body) else {
        return Ok(Response::precondition(
            403,
            ns,
            valid,
            "the body is not UTF-8",
        ));
    };
    let (meta, _) = require_collection(store, user.account, kind, coll).await?;
    let object = match kind {
        Kind::Calendar => match ical::check_calendar(text) {
            Ok(o) => {
                // RFC 4791 §5.3.2.1 supported-calendar-component.
                if !meta.components.is_empty() && !meta.components.contains(&o.component) {
                    return Ok(Response::precondition(
                        403,
                        CALDAV,
                        "supported-calendar-component",
                        &format!("this calendar does not take {}", o.component),
                    ));
                }
                StoredObject {
                    data: text.to_string(),
                    uid: o.uid,
                    component: Some(o.component),
                    start: o.span.map(|s| s.start),
                    end: o.span.and_then(|s| s.end),
                    recurring: o.span.is_some_and(|s| s.recurring),
                    expanded: true,
                }
            }
            Err(e) => return Ok(Response::precondition(403, ns, valid, &e.0)),
        },
        Kind::Addressbook => match ical::check_card(text) {
            Ok(uid) => StoredObject {
                data: text.to_string(),
                uid,
                ..StoredObject::default()
            },
            Err(e) => return Ok(Response::precondition(403, ns, valid, &e.0)),
        },
    };
    let account = user.account;
    let collection = kind.items_collection(coll);
    uids::ensure_index(store, account, kind, coll).await?;
    let current_item = get_object(store, account, kind, coll, name).await?;
    let current = current_item.as_ref().map(|i| i.version);
    if !preconditions_hold(req, current) {
        return Ok(Response::text(412, "precondition failed"));
    }
    // RFC 4791 §5.3.2.1 / RFC 6352 §6.3.2.1 no-uid-conflict: one UID per collection, looked
    // up in the UID index (an entry naming a resource that no longer holds the UID is stale).
    let indexed = uids::lookup(store, account, kind, coll, &object.uid).await?;
    let mut writes = Vec::new();
    match &indexed {
        Some((_, entry)) if entry.name == *name => {}
        _ => {
            if let Some((_, entry)) = &indexed
                && let Some(other) = get_object(store, account, kind, coll, &entry.name).await?
                && stored(&other).uid == object.uid
            {
                return Ok(uid_conflict(kind, ns, &user.username, coll, &other.id));
            }
            writes.push(uids::put(
                kind,
                coll,
                &object.uid,
                name,
                indexed.as_ref().map(|(i, _)| i),
            )?);
        }
    }
    // The resource held another UID before: its index entry goes.
    if let Some(cur) = &current_item {
        let old = stored(cur).uid;
        if old != object.uid
            && let Some((item, entry)) = uids::lookup(store, account, kind, coll, &old).await?
            && entry.name == *name
        {
            writes.push(uids::delete(kind, coll, &item));
        }
    }
    if current.is_none()
        && uids::count(store, account, kind, coll).await? >= MAX_RESOURCES_PER_COLLECTION
    {
        return Ok(Response::text(507, "the collection is full"));
    }
    let expect = current.map_or(Expect::Absent, Expect::Version);
    let value = serde_json::to_string(&object)
        .map_err(|e| Fail::Store(StoreError::Internal(e.to_string())))?;
    writes.insert(0, ItemWrite::put(&collection, name, expect, value));
    // Acknowledged only after the store's write returned; resource and index together.
    match store.write(account, writes).await {
        Ok(version) => {
            Ok(Response::new(if current.is_some() { 204 } else { 201 })
                .header("ETag", etag(version)))
        }
        Err(StoreError::Conflict(_)) => Ok(Response::text(412, "the resource changed meanwhile")),
        Err(e) => Err(e.into()),
    }
}

async fn delete(store: &dyn DavStore, user: &User, target: &Target, req: &Request) -> Outcome {
    match target {
        Target::Object(kind, coll, name) => {
            let collection = kind.items_collection(coll);
            let Some(item) = get_object(store, user.account, *kind, coll, name).await? else {
                return Ok(Response::text(404, "no such resource"));
            };
            if !preconditions_hold(req, Some(item.version)) {
                return Ok(Response::text(412, "precondition failed"));
            }
            let mut writes = vec![ItemWrite::delete(
                &collection,
                name,
                Expect::Version(item.version),
            )];
            let uid = stored(&item).uid;
            if let Some((entry_item, entry)) =
                uids::lookup(store, user.account, *kind, coll, &uid).await?
                && entry.name == *name
            {
                writes.push(uids::delete(*kind, coll, &entry_item));
            }
            match store.write(user.account, writes).await {
                Ok(_) => Ok(Response::new(204)),
                Err(StoreError::Conflict(_)) => {
                    Ok(Response::text(412, "the resource changed meanwhile"))
                }
                Err(e) => Err(e.into()),
            }
        }
        Target::Collection(kind, id) => {
            let Some((_, version)) = load_meta(store, user.account, *kind, id).await? else {
                return Ok(Response::text(404, "no such collection"));
            };
            if !preconditions_hold(req, Some(version)) {
                return Ok(Response::text(412, "precondition failed"));
            }
            // The collection disappears at once; its resources follow in batches (a
            // MKCOL of the same name clears any that an interrupted DELETE left).
            let write = ItemWrite::delete(kind.meta_collection(), id, Expect::Version(version));
            store.write(user.account, vec![write]).await?;
            purge_items(store, user.account, *kind, id).await?;
            Ok(Response::new(204))
        }
        _ => Ok(Response::text(403, "this collection cannot be deleted")),
    }
}

/// RFC 4791 §5.3.2.1 / RFC 6352 §6.3.2.1: 403 with `no-uid-conflict` naming the resource
/// that holds the UID.
fn uid_conflict(kind: Kind, ns: &str, user: &str, coll: &str, other: &str) -> Response {
    let href = paths::object(kind, user, coll, other);
    let inner = xml::element(DAV, "href", &xml::esc(&href));
    Response::xml(
        403,
        format!(
            "<d:error {}>{}</d:error>",
            xml::NAMESPACES,
            xml::element(ns, "no-uid-conflict", &inner)
        ),
    )
}

/// The resources a PROPFIND or REPORT answers for: the target and, with Depth 1, its members.
pub(crate) async fn resources(
    store: &dyn DavStore,
    user: &User,
    target: &Target,
    depth1: bool,
) -> Result<Vec<Res>, Fail> {
    let account = user.account;
    let mut out = Vec::new();
    match target {
        Target::Root => {
            out.push(Res::Root);
            if depth1 {
                out.push(Res::Principal);
            }
        }
        Target::Principal => out.push(Res::Principal),
        Target::Home(kind) => {
            out.push(Res::Home(*kind));
            if depth1 {
                for (id, meta, version) in list_meta(store, account, *kind).await? {
                    let state = collection_state(store, account, *kind, &id, version).await?;
                    out.push(Res::Collection {
                        kind: *kind,
                        id,
                        meta,
                        state,
                    });
                }
            }
        }
        Target::Collection(kind, id) => {
            let Some((meta, version)) = load_meta(store, account, *kind, id).await? else {
                return Err(answer(Response::text(404, "no such collection")));
            };
            let state = collection_state(store, account, *kind, id, version).await?;
            out.push(Res::Collection {
                kind: *kind,
                id: id.clone(),
                meta,
                state,
            });
            if depth1 {
                for item in store.get(account, &kind.items_collection(id), None).await? {
                    out.push(Res::Object {
                        kind: *kind,
                        coll: id.clone(),
                        item,
                    });
                }
            }
        }
        Target::Object(kind, coll, name) => {
            let Some(item) = get_object(store, account, *kind, coll, name).await? else {
                return Err(answer(Response::text(404, "no such resource")));
            };
            out.push(Res::Object {
                kind: *kind,
                coll: coll.clone(),
                item,
            });
        }
    }
    Ok(out)
}

/// The `<d:prop>` children a PROPFIND/REPORT asks for.
pub(crate) fn prop_request(el: Option<&Element>) -> PropRequest {
    match el {
        None => PropRequest::AllProp,
        Some(e) if e.is(DAV, "propname") => PropRequest::PropName,
        Some(e) if e.is(DAV, "prop") => PropRequest::Props(
            e.children
                .iter()
                .map(|c| (c.ns.clone(), c.name.clone()))
                .collect(),
        ),
        Some(_) => PropRequest::AllProp,
    }
}

#[cfg(test)]
mod tests;
