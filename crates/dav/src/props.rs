//! WebDAV properties (RFC 4918 §15, RFC 4791 §5.2/§6, RFC 6352 §6.2/§7, RFC 5397, RFC 3744
//! §5.4, RFC 6578 §4): PROPFIND and PROPPATCH.

use crate::core::{
    Fail, Outcome, Request, Response, User, answer, body_xml, bounded, etag, load_meta,
    prop_request, resources, stored,
};
use crate::paths::{self, Target};
use crate::store::{CollectionMeta, DavStore, Kind};
use crate::xml::{self, CALDAV, CARDDAV, CS, DAV, ICAL};
use bulwark_store::{CollectionItem, Expect, ItemWrite, ModSeq, StoreError};

/// One resource a multistatus describes.
#[derive(Debug, Clone)]
pub enum Res {
    Root,
    Principal,
    Home(Kind),
    Collection {
        kind: Kind,
        id: String,
        meta: CollectionMeta,
        state: ModSeq,
    },
    Object {
        kind: Kind,
        coll: String,
        item: CollectionItem,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropRequest {
    AllProp,
    PropName,
    Props(Vec<(String, String)>),
}

/// RFC 6578 §4: the sync token is a URI.
pub const SYNC_TOKEN_PREFIX: &str = "https://bulwark.invalid/sync/";

pub fn sync_token(state: ModSeq) -> String {
    format!("{SYNC_TOKEN_PREFIX}{}", state.0)
}

impl Res {
    pub fn href(&self, user: &str) -> String {
        match self {
            Res::Root => paths::ROOT.to_string(),
            Res::Principal => paths::principal(user),
            Res::Home(k) => paths::home(*k, user),
            Res::Collection { kind, id, .. } => paths::collection(*kind, user, id),
            Res::Object { kind, coll, item } => paths::object(*kind, user, coll, &item.id),
        }
    }

    /// The properties `allprop` and `propname` list (RFC 4918 §9.1; calendar-data and
    /// address-data only when asked for by name).
    fn names(&self) -> Vec<(&'static str, &'static str)> {
        let mut v = vec![
            (DAV, "resourcetype"),
            (DAV, "current-user-principal"),
            (DAV, "current-user-privilege-set"),
        ];
        match self {
            Res::Root => {}
            Res::Principal => v.extend([
                (DAV, "displayname"),
                (DAV, "principal-URL"),
                (CALDAV, "calendar-home-set"),
                (CARDDAV, "addressbook-home-set"),
                (CALDAV, "calendar-user-address-set"),
            ]),
            Res::Home(_) => v.push((DAV, "displayname")),
            Res::Collection { kind, .. } => {
                v.extend([
                    (DAV, "displayname"),
                    (DAV, "owner"),
                    (DAV, "supported-report-set"),
                    (DAV, "sync-token"),
                    (CS, "getctag"),
                ]);
                match kind {
                    Kind::Calendar => v.extend([
                        (CALDAV, "calendar-description"),
                        (ICAL, "calendar-color"),
                        (CALDAV, "supported-calendar-component-set"),
                        (CALDAV, "max-resource-size"),
                    ]),
                    Kind::Addressbook => v.extend([
                        (CARDDAV, "addressbook-description"),
                        (CARDDAV, "max-resource-size"),
                    ]),
                }
            }
            Res::Object { .. } => v.extend([
                (DAV, "getetag"),
                (DAV, "getcontenttype"),
                (DAV, "getcontentlength"),
            ]),
        }
        v
    }

    /// The inner XML of one property, `None` if the resource does not have it.
    pub fn value(&self, user: &str, ns: &str, name: &str) -> Option<String> {
        let href = |h: String| xml::element(DAV, "href", &xml::esc(&h));
        let e = |s: &str| xml::esc(s);
        let common = match (ns, name) {
            (DAV, "current-user-principal") => Some(href(paths::principal(user))),
            // RFC 3744 §5.4: the owner may do everything with their own resources.
            (DAV, "current-user-privilege-set") => Some(
                [
                    "read",
                    "write",
                    "write-properties",
                    "write-content",
                    "bind",
                    "unbind",
                    "all",
                ]
                .iter()
                .map(|p| xml::element(DAV, "privilege", &xml::element(DAV, p, "")))
                .collect(),
            ),
            _ => None,
        };
        if common.is_some() {
            return common;
        }
        match self {
            Res::Root => match (ns, name) {
                (DAV, "resourcetype") => Some(xml::element(DAV, "collection", "")),
                _ => None,
            },
            Res::Principal => match (ns, name) {
                (DAV, "resourcetype") => {
                    Some(xml::element(DAV, "collection", "") + &xml::element(DAV, "principal", ""))
                }
                (DAV, "displayname") => Some(e(user)),
                (DAV, "principal-URL") => Some(href(paths::principal(user))),
                (CALDAV, "calendar-home-set") => Some(href(paths::home(Kind::Calendar, user))),
                (CARDDAV, "addressbook-home-set") => {
                    Some(href(paths::home(Kind::Addressbook, user)))
                }
                (CALDAV, "calendar-user-address-set") => Some(href(format!("mailto:{user}"))),
                _ => None,
            },
            Res::Home(kind) => match (ns, name) {
                (DAV, "resourcetype") => Some(xml::element(DAV, "collection", "")),
                (DAV, "displayname") => Some(e(kind.home_segment())),
                _ => None,
            },
            Res::Collection {
                kind, meta, state, ..
            } => collection_value(*kind, meta, *state, user, ns, name),
            Res::Object { kind, item, .. } => {
                let obj = stored(item);
                match (ns, name) {
                    (DAV, "resourcetype") => Some(String::new()),
                    (DAV, "getetag") => Some(e(&etag(item.version))),
                    (DAV, "getcontenttype") => Some(e(kind.content_type())),
                    (DAV, "getcontentlength") => Some(obj.data.len().to_string()),
                    (CALDAV, "calendar-data") if *kind == Kind::Calendar => Some(e(&obj.data)),
                    (CARDDAV, "address-data") if *kind == Kind::Addressbook => Some(e(&obj.data)),
                    _ => None,
                }
            }
        }
    }
}

fn collection_value(
    kind: Kind,
    meta: &CollectionMeta,
    state: ModSeq,
    user: &str,
    ns: &str,
    name: &str,
) -> Option<String> {
    let e = |s: &str| xml::esc(s);
    let report = |ns: &str, n: &str| {
        xml::element(
            DAV,
            "supported-report",
            &xml::element(DAV, "report", &xml::element(ns, n, "")),
        )
    };
    match (ns, name) {
        (DAV, "resourcetype") => Some(
            xml::element(DAV, "collection", "")
                + &match kind {
                    Kind::Calendar => xml::element(CALDAV, "calendar", ""),
                    Kind::Addressbook => xml::element(CARDDAV, "addressbook", ""),
                },
        ),
        (DAV, "displayname") => Some(e(&meta.displayname)),
        (DAV, "owner") => Some(xml::element(DAV, "href", &e(&paths::principal(user)))),
        (DAV, "sync-token") => Some(e(&sync_token(state))),
        (CS, "getctag") => Some(e(&state.0.to_string())),
        (DAV, "supported-report-set") => Some(match kind {
            Kind::Calendar => {
                report(CALDAV, "calendar-multiget")
                    + &report(CALDAV, "calendar-query")
                    + &report(CALDAV, "free-busy-query")
                    + &report(DAV, "sync-collection")
            }
            Kind::Addressbook => {
                report(CARDDAV, "addressbook-multiget")
                    + &report(CARDDAV, "addressbook-query")
                    + &report(DAV, "sync-collection")
            }
        }),
        (CALDAV, "max-resource-size") | (CARDDAV, "max-resource-size") => {
            Some(crate::limits::MAX_RESOURCE_SIZE.to_string())
        }
        _ => match kind {
            Kind::Calendar => match (ns, name) {
                (CALDAV, "calendar-description") => meta.description.as_deref().map(e),
                (ICAL, "calendar-color") => meta.color.as_deref().map(e),
                (CALDAV, "supported-calendar-component-set") => {
                    let comps: Vec<&str> = if meta.components.is_empty() {
                        vec!["VEVENT", "VTODO", "VJOURNAL", "VFREEBUSY"]
                    } else {
                        meta.components.iter().map(String::as_str).collect()
                    };
                    Some(
                        comps
                            .iter()
                            .map(|c| format!("<c:comp name=\"{}\"/>", e(c)))
                            .collect(),
                    )
                }
                _ => None,
            },
            Kind::Addressbook => match (ns, name) {
                (CARDDAV, "addressbook-description") => meta.description.as_deref().map(e),
                _ => None,
            },
        },
    }
}

/// One `<d:response>` with the requested properties (found: 200, missing: 404).
pub fn response_xml(res: &Res, user: &str, want: &PropRequest) -> String {
    let mut found = String::new();
    let mut missing = String::new();
    match want {
        PropRequest::PropName => {
            for (ns, n) in res.names() {
                found.push_str(&xml::element(ns, n, ""));
            }
        }
        PropRequest::AllProp => {
            for (ns, n) in res.names() {
                if let Some(v) = res.value(user, ns, n) {
                    found.push_str(&xml::element(ns, n, &v));
                }
            }
        }
        PropRequest::Props(list) => {
            for (ns, n) in list {
                match res.value(user, ns, n) {
                    Some(v) => found.push_str(&xml::element(ns, n, &v)),
                    None => missing.push_str(&xml::element(ns, n, "")),
                }
            }
        }
    }
    let mut out = format!("<d:response><d:href>{}</d:href>", xml::esc(&res.href(user)));
    if !found.is_empty() || missing.is_empty() {
        out.push_str(&propstat(&found, "200 OK"));
    }
    if !missing.is_empty() {
        out.push_str(&propstat(&missing, "404 Not Found"));
    }
    out.push_str("</d:response>");
    out
}

pub fn propstat(props: &str, status: &str) -> String {
    format!(
        "<d:propstat><d:prop>{props}</d:prop><d:status>HTTP/1.1 {status}</d:status></d:propstat>"
    )
}

pub fn multistatus(inner: &str) -> Response {
    Response::xml(
        207,
        format!("<d:multistatus {}>{inner}</d:multistatus>", xml::NAMESPACES),
    )
}

/// PROPFIND (RFC 4918 §9.1), Depth 0 or 1.
pub(crate) async fn propfind(
    store: &dyn DavStore,
    user: &User,
    target: &Target,
    req: &Request,
) -> Outcome {
    // RFC 4918 §9.1: no Depth means infinity, which this server refuses (§9.1.1).
    let depth1 = match req.depth.as_deref().map(str::trim) {
        Some("0") => false,
        Some("1") => true,
        _ => {
            return Ok(Response::precondition(
                403,
                DAV,
                "propfind-finite-depth",
                "Depth: infinity is not supported; use Depth 0 or 1",
            ));
        }
    };
    let want = match body_xml(req)? {
        None => PropRequest::AllProp,
        Some(root) if root.is(DAV, "propfind") => prop_request(root.children.first()),
        Some(_) => return Ok(Response::text(400, "the body is not a DAV:propfind")),
    };
    let list = resources(store, user, target, depth1).await?;
    let body: String = list
        .iter()
        .map(|r| response_xml(r, &user.username, &want))
        .collect();
    Ok(multistatus(&body))
}

/// PROPPATCH (RFC 4918 §9.2): all or nothing; the writable properties are the display
/// name, colour and description of calendars and address books.
pub(crate) async fn proppatch(
    store: &dyn DavStore,
    user: &User,
    target: &Target,
    req: &Request,
) -> Outcome {
    let Target::Collection(kind, id) = target else {
        return Ok(Response::text(
            403,
            "only calendars and address books have writable properties",
        ));
    };
    let Some((mut meta, version)) = load_meta(store, user.account, *kind, id).await? else {
        return Ok(Response::text(404, "no such collection"));
    };
    let Some(root) = body_xml(req)? else {
        return Ok(Response::text(400, "PROPPATCH needs a body"));
    };
    if !root.is(DAV, "propertyupdate") {
        return Ok(Response::text(400, "the body is not a DAV:propertyupdate"));
    }
    let mut done = Vec::new();
    let mut refused = Vec::new();
    for op in &root.children {
        let set = op.is(DAV, "set");
        if !set && !op.is(DAV, "remove") {
            continue;
        }
        for prop in op.child(DAV, "prop").map_or(&[][..], |p| &p.children[..]) {
            let value = if set {
                Some(bounded(&prop.text)?)
            } else {
                None
            };
            let ok = match (*kind, prop.ns.as_str(), prop.name.as_str()) {
                (_, DAV, "displayname") => {
                    meta.displayname = value.unwrap_or_default();
                    true
                }
                (Kind::Calendar, CALDAV, "calendar-description")
                | (Kind::Addressbook, CARDDAV, "addressbook-description") => {
                    meta.description = value;
                    true
                }
                (Kind::Calendar, ICAL, "calendar-color") => {
                    meta.color = value;
                    true
                }
                _ => false,
            };
            let el = xml::element(&prop.ns, &prop.name, "");
            if ok { done.push(el) } else { refused.push(el) }
        }
    }
    let href = xml::esc(&paths::collection(*kind, &user.username, id));
    if !refused.is_empty() {
        // RFC 4918 §9.2.1: one refused property fails them all (424 for the others).
        let body = format!(
            "<d:response><d:href>{href}</d:href>{}{}</d:response>",
            propstat(&refused.concat(), "403 Forbidden"),
            if done.is_empty() {
                String::new()
            } else {
                propstat(&done.concat(), "424 Failed Dependency")
            }
        );
        return Ok(multistatus(&body));
    }
    let value = serde_json::to_string(&meta)
        .map_err(|e| Fail::Store(StoreError::Internal(e.to_string())))?;
    let write = ItemWrite::put(kind.meta_collection(), id, Expect::Version(version), value);
    match store.write(user.account, vec![write]).await {
        Ok(_) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(answer(Response::text(
                409,
                "the collection changed meanwhile",
            )));
        }
        Err(e) => return Err(e.into()),
    }
    Ok(multistatus(&format!(
        "<d:response><d:href>{href}</d:href>{}</d:response>",
        propstat(&done.concat(), "200 OK")
    )))
}
