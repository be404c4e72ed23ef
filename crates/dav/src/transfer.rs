//! `bulwark calendar import/export` and `bulwark contacts import/export` (issue 15): .ics
//! and .vcf files in and out of an account's calendars and address books.
//!
//! An import splits the file into one resource per UID (a recurring event's overrides stay
//! with their master, the VTIMEZONEs its times name are copied in) and stores each through
//! the same PUT as a DAV client ([`crate::core::handle`]), so the checks, limits and UID
//! index are the ones CalDAV/CardDAV apply. A UID already in the collection is updated when
//! its data differs and skipped when it is the same: running an import again adds nothing.

use crate::core::{Request, User, handle};
use crate::paths;
use crate::store::{DavStore, Kind, StoredObject};
use crate::uids;
use bulwark_store::{AccountId, StoreError};
use calcard::icalendar::{
    ICalendar, ICalendarComponent, ICalendarComponentType, ICalendarProperty,
};
use calcard::{Entry, Parser};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

/// Most entries (VCALENDAR blocks or vCards) one file may hold.
pub const MAX_IMPORT_ENTRIES: usize = 100_000;

/// One resource to store: its UID and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub uid: String,
    pub text: String,
    /// Where it starts in the file (1-based line), for messages.
    pub line: usize,
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub imported: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// One line per entry that was not stored, saying where and why.
    pub failed: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("no {what} {id:?} in this account")]
    NoCollection { what: &'static str, id: String },
    #[error("the store: {0}")]
    Store(#[from] StoreError),
}

/// Top-level `BEGIN:{name}` … `END:{name}` blocks of a file with their first line number;
/// text outside them (other than blank lines) is reported in `stray`.
fn blocks(text: &str, name: &str) -> (Vec<(usize, String)>, Vec<String>) {
    let (begin, end) = (format!("BEGIN:{name}"), format!("END:{name}"));
    let mut out = Vec::new();
    let mut stray = Vec::new();
    let mut current: Option<(usize, String)> = None;
    let mut depth = 0usize;
    for (n, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let upper = line.trim_end().to_ascii_uppercase();
        match &mut current {
            None if upper == begin => {
                current = Some((n + 1, format!("{line}\r\n")));
                depth = 1;
            }
            None if line.trim().is_empty() => {}
            None => stray.push(format!(
                "line {}: {:?} is outside any {name}",
                n + 1,
                line.chars().take(60).collect::<String>()
            )),
            Some((_, buf)) => {
                buf.push_str(line);
                buf.push_str("\r\n");
                if upper == begin {
                    depth += 1;
                } else if upper == end {
                    depth -= 1;
                    if depth == 0
                        && let Some(done) = current.take()
                    {
                        out.push(done);
                    }
                }
            }
        }
    }
    if let Some((line, _)) = current {
        stray.push(format!("line {line}: this {name} has no END:{name}"));
    }
    (out, stray)
}

/// Splits an .ics file into one VCALENDAR per UID; entries that cannot be read are listed
/// with their line.
pub fn split_calendar(text: &str) -> (Vec<Piece>, Vec<String>) {
    let (found, mut failed) = blocks(text, "VCALENDAR");
    let mut pieces = Vec::new();
    for (line, block) in found.into_iter().take(MAX_IMPORT_ENTRIES) {
        let cal = match Parser::new(&block).entry() {
            Entry::ICalendar(cal) => cal,
            other => {
                failed.push(format!(
                    "line {line}: the VCALENDAR cannot be read: {}",
                    crate::ical::describe(&other)
                ));
                continue;
            }
        };
        for (uid, text) in by_uid(&cal) {
            pieces.push(Piece { uid, text, line });
        }
    }
    (pieces, failed)
}

fn is_main(c: &ICalendarComponent) -> bool {
    matches!(
        c.component_type,
        ICalendarComponentType::VEvent
            | ICalendarComponentType::VTodo
            | ICalendarComponentType::VJournal
            | ICalendarComponentType::VFreebusy
    )
}

/// One VCALENDAR per UID: the root's properties (without METHOD, RFC 4791 §4.1), the
/// components of that UID with their alarms, and the VTIMEZONEs they name.
fn by_uid(cal: &ICalendar) -> Vec<(String, String)> {
    let Some(root) = cal.components.first() else {
        return Vec::new();
    };
    let mut uids: Vec<String> = Vec::new();
    for &id in &root.component_ids {
        if let Some(c) = cal.components.get(id as usize)
            && is_main(c)
            && let Some(uid) = c.uid()
            && !uids.iter().any(|u| u == uid)
        {
            uids.push(uid.to_string());
        }
    }
    uids.into_iter()
        .map(|uid| {
            let mut out = ICalendar {
                components: vec![ICalendarComponent {
                    component_type: ICalendarComponentType::VCalendar,
                    entries: root
                        .entries
                        .iter()
                        .filter(|e| e.name != ICalendarProperty::Method)
                        .cloned()
                        .collect(),
                    component_ids: Vec::new(),
                }],
            };
            let mine: Vec<u32> = root
                .component_ids
                .iter()
                .copied()
                .filter(|&id| {
                    cal.components
                        .get(id as usize)
                        .is_some_and(|c| is_main(c) && c.uid() == Some(uid.as_str()))
                })
                .collect();
            let mut tzids = BTreeSet::new();
            for &id in &mine {
                collect_tzids(cal, id, &mut tzids);
            }
            for &id in &root.component_ids {
                if let Some(c) = cal.components.get(id as usize)
                    && c.component_type == ICalendarComponentType::VTimezone
                    && c.property(&ICalendarProperty::Tzid)
                        .and_then(|e| e.values.first())
                        .and_then(|v| v.as_text())
                        .is_some_and(|t| tzids.contains(t))
                {
                    let new = copy(cal, id, &mut out);
                    out.components[0].component_ids.push(new);
                }
            }
            for id in mine {
                let new = copy(cal, id, &mut out);
                out.components[0].component_ids.push(new);
            }
            (uid, out.to_string())
        })
        .collect()
}

fn collect_tzids(cal: &ICalendar, id: u32, into: &mut BTreeSet<String>) {
    let Some(c) = cal.components.get(id as usize) else {
        return;
    };
    for e in &c.entries {
        if let Some(t) = e.tz_id() {
            into.insert(t.to_string());
        }
    }
    for &child in &c.component_ids {
        collect_tzids(cal, child, into);
    }
}

/// Copies component `id` of `from` (with its sub-components) into `to`; its new id.
fn copy(from: &ICalendar, id: u32, to: &mut ICalendar) -> u32 {
    let Some(c) = from.components.get(id as usize) else {
        return 0;
    };
    let children: Vec<u32> = c.component_ids.iter().map(|&k| copy(from, k, to)).collect();
    to.components.push(ICalendarComponent {
        component_type: c.component_type.clone(),
        entries: c.entries.clone(),
        component_ids: children,
    });
    (to.components.len() - 1) as u32
}

/// Splits a .vcf file into its vCards (kept byte for byte).
pub fn split_cards(text: &str) -> (Vec<Piece>, Vec<String>) {
    let (found, mut failed) = blocks(text, "VCARD");
    let mut pieces = Vec::new();
    for (line, block) in found.into_iter().take(MAX_IMPORT_ENTRIES) {
        match crate::ical::check_card(&block) {
            Ok(uid) => pieces.push(Piece {
                uid,
                text: block,
                line,
            }),
            Err(e) => failed.push(format!("line {line}: {}", e.0)),
        }
    }
    (pieces, failed)
}

/// The resource name an imported UID gets: the UID itself when it is a plain name, else a
/// hash of it.
pub fn resource_name(kind: Kind, uid: &str) -> String {
    let ext = match kind {
        Kind::Calendar => "ics",
        Kind::Addressbook => "vcf",
    };
    let plain = !uid.is_empty()
        && uid.len() <= 100
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@._-+".contains(&b));
    if plain {
        format!("{uid}.{ext}")
    } else {
        format!(
            "{}.{ext}",
            &hex::encode(Sha256::digest(uid.as_bytes()))[..32]
        )
    }
}

/// Stores the pieces in the collection `coll` of the account, as PUTs.
pub async fn import(
    store: &dyn DavStore,
    user: &User,
    kind: Kind,
    coll: &str,
    pieces: Vec<Piece>,
) -> Result<ImportSummary, TransferError> {
    crate::store::ensure_defaults(store, user.account).await?;
    require(store, user.account, kind, coll).await?;
    let mut summary = ImportSummary::default();
    for piece in pieces {
        let existing = uids::lookup(store, user.account, kind, coll, &piece.uid).await?;
        let mut req = Request {
            method: "PUT".into(),
            body: piece.text.clone().into_bytes(),
            ..Request::default()
        };
        let name = match existing {
            Some((_, entry)) => {
                let items = store
                    .get(
                        user.account,
                        &kind.items_collection(coll),
                        Some(std::slice::from_ref(&entry.name)),
                    )
                    .await?;
                if let Some(item) = items.first() {
                    let obj: StoredObject = serde_json::from_str(&item.value).unwrap_or_default();
                    if obj.data == piece.text {
                        summary.unchanged += 1;
                        continue;
                    }
                    req.if_match = Some(format!("\"{}\"", item.version.0));
                }
                entry.name
            }
            None => {
                req.if_none_match = Some("*".into());
                resource_name(kind, &piece.uid)
            }
        };
        req.path = paths::object(kind, &user.username, coll, &name);
        let r = handle(store, user, req).await;
        match r.status {
            201 => summary.imported += 1,
            204 => summary.updated += 1,
            503 => {
                return Err(TransferError::Store(StoreError::Unavailable(
                    "the store is unavailable".into(),
                )));
            }
            status => summary.failed.push(format!(
                "line {} (UID {}): refused ({status}): {}",
                piece.line,
                piece.uid,
                reason(&r.body)
            )),
        }
    }
    Ok(summary)
}

/// The human part of an error answer.
fn reason(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if let Some(start) = text.find("<d:responsedescription>") {
        let rest = &text[start + "<d:responsedescription>".len()..];
        return rest.split('<').next().unwrap_or("").to_string();
    }
    if text.contains("no-uid-conflict") {
        return "another resource holds this UID".into();
    }
    text.chars().take(200).collect()
}

async fn require(
    store: &dyn DavStore,
    account: AccountId,
    kind: Kind,
    coll: &str,
) -> Result<(), TransferError> {
    let found = store
        .get(account, kind.meta_collection(), Some(&[coll.to_string()]))
        .await?;
    if found.is_empty() {
        return Err(TransferError::NoCollection {
            what: match kind {
                Kind::Calendar => "calendar",
                Kind::Addressbook => "address book",
            },
            id: coll.to_string(),
        });
    }
    Ok(())
}

/// A whole calendar as one .ics (VTIMEZONEs once per TZID) or a whole address book as one
/// .vcf, and how many resources it holds.
pub async fn export(
    store: &dyn DavStore,
    account: AccountId,
    kind: Kind,
    coll: &str,
) -> Result<(String, usize), TransferError> {
    require(store, account, kind, coll).await?;
    let mut items = store
        .get(account, &kind.items_collection(coll), None)
        .await?;
    items.sort_by(|a, b| a.id.cmp(&b.id));
    let objects: Vec<StoredObject> = items
        .iter()
        .map(|i| serde_json::from_str(&i.value).unwrap_or_default())
        .collect();
    let count = objects.len();
    if kind == Kind::Addressbook {
        let mut out = String::new();
        for o in objects {
            out.push_str(&o.data);
            if !o.data.ends_with('\n') {
                out.push_str("\r\n");
            }
        }
        return Ok((out, count));
    }
    let mut out = ICalendar {
        components: vec![ICalendarComponent {
            component_type: ICalendarComponentType::VCalendar,
            entries: Vec::new(),
            component_ids: Vec::new(),
        }],
    };
    let mut header_set = false;
    let mut tzids = BTreeSet::new();
    for o in objects {
        let Some(cal) = crate::range::parse(&o.data) else {
            continue;
        };
        let Some(root) = cal.components.first() else {
            continue;
        };
        if !header_set {
            out.components[0].entries = root.entries.clone();
            header_set = true;
        }
        for &id in &root.component_ids {
            let Some(c) = cal.components.get(id as usize) else {
                continue;
            };
            if c.component_type == ICalendarComponentType::VTimezone {
                let tzid = c
                    .property(&ICalendarProperty::Tzid)
                    .and_then(|e| e.values.first())
                    .and_then(|v| v.as_text())
                    .unwrap_or("")
                    .to_string();
                if !tzids.insert(tzid) {
                    continue;
                }
            }
            let new = copy(&cal, id, &mut out);
            out.components[0].component_ids.push(new);
        }
    }
    if !header_set {
        out.components[0].entries = crate::range::parse(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Bulwark//Calendar export//EN\r\nEND:VCALENDAR\r\n",
        )
        .and_then(|c| c.components.into_iter().next())
        .map(|c| c.entries)
        .unwrap_or_default();
    }
    Ok((out.to_string(), count))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nMETHOD:PUBLISH\r\nBEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\nBEGIN:VEVENT\r\nUID:one\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\nSUMMARY:One\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:two\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID=Europe/Berlin:20260105T100000\r\nRRULE:FREQ=WEEKLY\r\nSUMMARY:Two\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:x\r\nTRIGGER:-PT5M\r\nEND:VALARM\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:two\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID;TZID=Europe/Berlin:20260112T100000\r\nDTSTART;TZID=Europe/Berlin:20260112T120000\r\nSUMMARY:Two moved\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    #[test]
    fn an_ics_splits_by_uid_with_overrides_and_the_time_zones_they_name() {
        let (pieces, failed) = split_calendar(FILE);
        assert!(failed.is_empty(), "{failed:?}");
        assert_eq!(pieces.len(), 2);
        let one = &pieces[0];
        assert_eq!(one.uid, "one");
        assert!(!one.text.contains("VTIMEZONE") && !one.text.contains("METHOD"));
        let two = &pieces[1];
        assert_eq!(two.text.matches("BEGIN:VEVENT").count(), 2, "{}", two.text);
        assert!(two.text.contains("BEGIN:VTIMEZONE") && two.text.contains("BEGIN:VALARM"));
        for p in &pieces {
            assert_eq!(crate::ical::check_calendar(&p.text).unwrap().uid, p.uid);
        }
    }

    #[test]
    fn bad_entries_are_named_by_their_line() {
        let text = format!("junk line\r\n{FILE}BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\n");
        let (pieces, failed) = split_calendar(&text);
        assert_eq!(pieces.len(), 2);
        assert_eq!(failed.len(), 2, "{failed:?}");
        assert!(failed[0].starts_with("line 1:"), "{failed:?}");
        assert!(failed[1].contains("no END:VCALENDAR"), "{failed:?}");
        let cards = "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:a\r\nFN:A\r\nEND:VCARD\r\nBEGIN:VCARD\r\nVERSION:4.0\r\nFN:no uid\r\nEND:VCARD\r\n";
        let (pieces, failed) = split_cards(cards);
        assert_eq!(pieces.len(), 1);
        assert!(
            failed[0].starts_with("line 6:") && failed[0].contains("UID"),
            "{failed:?}"
        );
    }

    #[test]
    fn resource_names_are_safe() {
        assert_eq!(resource_name(Kind::Calendar, "abc@x"), "abc@x.ics");
        let odd = resource_name(Kind::Addressbook, "a/b c");
        assert!(odd.ends_with(".vcf") && !odd.contains('/'));
    }
}
