//! DAV XML bodies: a bounded reader into a small element tree (namespaces resolved) and the
//! escaping the writers use. quick-xml does not expand DTD entities, so "billion laughs"
//! bodies cannot grow; depth and element count are capped ([`crate::limits`]).

use crate::limits::{MAX_XML_DEPTH, MAX_XML_ELEMENTS};
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

pub const DAV: &str = "DAV:";
pub const CALDAV: &str = "urn:ietf:params:xml:ns:caldav";
pub const CARDDAV: &str = "urn:ietf:params:xml:ns:carddav";
/// CalendarServer extensions (`getctag`).
pub const CS: &str = "http://calendarserver.org/ns/";
/// Apple's iCal namespace (`calendar-color`).
pub const ICAL: &str = "http://apple.com/ns/ical/";

/// One element: namespace, local name, children, and its own text (concatenated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub ns: String,
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }
    pub fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, name))
    }
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("malformed XML: {0}")]
    Malformed(String),
    #[error("XML nested deeper than {MAX_XML_DEPTH} elements")]
    TooDeep,
    #[error("XML has more than {MAX_XML_ELEMENTS} elements")]
    TooManyElements,
    #[error("the body has no XML element")]
    Empty,
}

/// Parses a whole body into its root element.
pub fn parse(body: &[u8]) -> Result<Element, XmlError> {
    let mut reader = NsReader::from_reader(body);
    reader.config_mut().trim_text(true);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    let mut buf = Vec::new();
    loop {
        let (ns, event) = reader
            .read_resolved_event_into(&mut buf)
            .map_err(|e| XmlError::Malformed(e.to_string()))?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                count += 1;
                if count > MAX_XML_ELEMENTS {
                    return Err(XmlError::TooManyElements);
                }
                if stack.len() >= MAX_XML_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                if root.is_some() {
                    return Err(XmlError::Malformed("content after the root element".into()));
                }
                let ns = match ns {
                    ResolveResult::Bound(n) => String::from_utf8_lossy(n.as_ref()).into_owned(),
                    ResolveResult::Unbound => String::new(),
                    ResolveResult::Unknown(p) => {
                        return Err(XmlError::Malformed(format!(
                            "undeclared namespace prefix {}",
                            String::from_utf8_lossy(&p)
                        )));
                    }
                };
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                let mut attrs = Vec::new();
                for a in e.attributes() {
                    let a = a.map_err(|e| XmlError::Malformed(e.to_string()))?;
                    let value = a
                        .unescape_value()
                        .map_err(|e| XmlError::Malformed(e.to_string()))?;
                    attrs.push((
                        String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned(),
                        value.into_owned(),
                    ));
                }
                let el = Element {
                    ns,
                    name,
                    attrs,
                    children: Vec::new(),
                    text: String::new(),
                };
                if matches!(event, Event::Empty(_)) {
                    close(&mut stack, &mut root, el);
                } else {
                    stack.push(el);
                }
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| XmlError::Malformed("unbalanced end tag".into()))?;
                close(&mut stack, &mut root, el);
            }
            Event::Text(t) => {
                let text = t
                    .unescape()
                    .map_err(|e| XmlError::Malformed(e.to_string()))?;
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&text);
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::Eof => break,
            // Declarations, comments, processing instructions, DOCTYPE: ignored (no entity
            // in a DOCTYPE is ever expanded).
            _ => {}
        }
        buf.clear();
    }
    if !stack.is_empty() {
        return Err(XmlError::Malformed("unclosed element".into()));
    }
    root.ok_or(XmlError::Empty)
}

fn close(stack: &mut [Element], root: &mut Option<Element>, el: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(el),
        None => *root = Some(el),
    }
}

/// Escapes text for element content and attribute values.
pub fn esc(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

/// The prefix the writers use for a namespace, if it is one of the declared ones.
pub fn prefix(ns: &str) -> Option<&'static str> {
    match ns {
        DAV => Some("d"),
        CALDAV => Some("c"),
        CARDDAV => Some("card"),
        CS => Some("cs"),
        ICAL => Some("ical"),
        _ => None,
    }
}

/// The namespace declarations of every multistatus the server writes.
pub const NAMESPACES: &str = "xmlns:d=\"DAV:\" xmlns:c=\"urn:ietf:params:xml:ns:caldav\" \
xmlns:card=\"urn:ietf:params:xml:ns:carddav\" xmlns:cs=\"http://calendarserver.org/ns/\" \
xmlns:ical=\"http://apple.com/ns/ical/\"";

/// An element `ns:name` with raw (already escaped) inner XML; empty when `inner` is empty.
pub fn element(ns: &str, name: &str, inner: &str) -> String {
    let (open, close) = match prefix(ns) {
        Some(p) => (format!("{p}:{name}"), format!("{p}:{name}")),
        None => (
            format!("x:{name} xmlns:x=\"{}\"", esc(ns)),
            format!("x:{name}"),
        ),
    };
    if inner.is_empty() {
        format!("<{open}/>")
    } else {
        format!("<{open}>{inner}</{close}>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn propfind_body_is_read_with_namespaces() {
        let body = br#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:displayname/><C:calendar-home-set/></D:prop></D:propfind>"#;
        let root = parse(body).unwrap();
        assert!(root.is(DAV, "propfind"));
        let prop = root.child(DAV, "prop").unwrap();
        assert!(prop.children[1].is(CALDAV, "calendar-home-set"));
    }

    #[test]
    fn text_is_unescaped() {
        let root = parse(b"<a xmlns='DAV:'>x &amp; y</a>").unwrap();
        assert_eq!(root.text, "x & y");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let body = "<a>".repeat(MAX_XML_DEPTH + 1) + &"</a>".repeat(MAX_XML_DEPTH + 1);
        assert_eq!(parse(body.as_bytes()), Err(XmlError::TooDeep));
    }

    #[test]
    fn too_many_elements_are_refused() {
        let body = format!("<a>{}</a>", "<b/>".repeat(MAX_XML_ELEMENTS + 1));
        assert_eq!(parse(body.as_bytes()), Err(XmlError::TooManyElements));
    }

    #[test]
    fn entities_of_a_doctype_are_not_expanded() {
        let body = br#"<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxxxxxx"><!ENTITY y "&x;&x;&x;&x;">]><a xmlns="DAV:">&y;</a>"#;
        assert!(parse(body).is_err());
    }

    #[test]
    fn hostile_bodies_give_errors_not_panics() {
        for body in [
            &b""[..],
            b"<",
            b"<a></b>",
            b"<a><b></a>",
            b"<x:a/>",
            b"\xff\xfe<a/>",
            b"<a/><b/>",
            b"<a attr='&#xFFFFFFFF;'/>",
        ] {
            assert!(parse(body).is_err(), "{:?}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn unknown_namespaces_get_their_own_declaration() {
        assert_eq!(element("urn:x", "p", ""), "<x:p xmlns:x=\"urn:x\"/>");
        assert_eq!(element(DAV, "href", "/a"), "<d:href>/a</d:href>");
    }
}
