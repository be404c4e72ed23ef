//! FETCH / UID FETCH (RFC 9051 §6.4.5, §7.5.2; RFC 7162 CHANGEDSINCE/VANISHED/MODSEQ;
//! RFC 3516 BINARY).

use super::view::BlobKey;
use super::{CmdError, CmdResult, Done, KeywordCase, Keywords, Session, ViewMsg};
use crate::message::{self, Section, SectionText};
use crate::parser::{FetchAttr, FetchCommand};
use crate::response::compress_set;
use bulwark_store::{
    BlobHash, EmailId, KeywordOp, KeywordUpdate, ModSeq, StoreError, ThreadId, Uid,
};
use std::collections::{HashMap, HashSet};

/// Messages whose content one store read fetches (bounds memory per FETCH step).
const FETCH_BATCH: usize = 256;

/// Messages whose stored ENVELOPE one store read fetches (a few hundred bytes each).
const ENVELOPE_BATCH: usize = 4096;

/// `BODY[...]` label for the response (RFC 9051 §7.5.2: the section spec as requested).
fn section_label(section: &Section) -> String {
    let mut s: Vec<String> = section.part.iter().map(|p| p.to_string()).collect();
    if let Some(text) = &section.text {
        s.push(match text {
            SectionText::Header => "HEADER".into(),
            SectionText::Text => "TEXT".into(),
            SectionText::Mime => "MIME".into(),
            SectionText::HeaderFields { not, fields } => {
                let quoted: Vec<String> = fields.iter().map(|f| quote_field(f)).collect();
                format!(
                    "HEADER.FIELDS{} ({})",
                    if *not { ".NOT" } else { "" },
                    quoted.join(" ")
                )
            }
        });
    }
    s.join(".")
}

/// Field names are atoms in practice; anything else goes back quoted.
fn quote_field(f: &str) -> String {
    if !f.is_empty()
        && f.bytes()
            .all(|b| b.is_ascii_graphic() && !b"()\"\\{}%*[]".contains(&b))
    {
        f.to_string()
    } else {
        String::from_utf8_lossy(&message::quoted_or_literal(f.as_bytes())).into_owned()
    }
}

fn literal(out: &mut Vec<u8>, data: &[u8], binary: bool) {
    // RFC 3516 §4.3 / RFC 9051 §4.3: literal8 when BINARY data contains NUL.
    let nul = data.contains(&0);
    let tilde = if binary && nul { "~" } else { "" };
    out.extend_from_slice(format!("{tilde}{{{}}}\r\n", data.len()).as_bytes());
    if nul && !binary {
        // RFC 9051 §9: a plain `literal` is CHAR8 (no NUL), and `literal8` is only for
        // BINARY (RFC 3516 §4.3). Like Dovecot (imap-msgpart.c), each NUL goes out as
        // 0x80: one byte for one, so sizes and partial offsets stay those of the message.
        out.extend(data.iter().map(|&b| if b == 0 { 0x80 } else { b }));
    } else {
        out.extend_from_slice(data);
    }
}

fn apply_partial(data: &[u8], partial: Option<(u32, u32)>) -> &[u8] {
    match partial {
        Some((origin, len)) => message::partial(data, origin, Some(len)),
        None => data,
    }
}

/// Does this item set `\Seen` (RFC 9051 §6.4.5: BODY[...] and BINARY[...] without PEEK,
/// RFC822 and RFC822.TEXT)?
fn sets_seen(attr: &FetchAttr) -> bool {
    matches!(
        attr,
        FetchAttr::BodySection { peek: false, .. }
            | FetchAttr::Binary { peek: false, .. }
            | FetchAttr::Rfc822
            | FetchAttr::Rfc822Text
    )
}

/// What one message's content items are rendered from.
#[derive(Clone, Copy)]
enum Content<'a> {
    /// No content item was asked for, or the message is gone.
    Missing,
    /// The raw message.
    Raw(&'a [u8]),
    /// Only `ENVELOPE` was asked for: its rendered bytes.
    Envelope(&'a [u8]),
}

fn needs_content(attr: &FetchAttr) -> bool {
    !matches!(
        attr,
        FetchAttr::Flags
            | FetchAttr::InternalDate
            | FetchAttr::Rfc822Size
            | FetchAttr::Uid
            | FetchAttr::ModSeq
            | FetchAttr::EmailId
            | FetchAttr::ThreadId
            | FetchAttr::Preview { .. }
            | FetchAttr::SaveDate
    )
}

/// What the view does not keep about the emails one FETCH shows, read from the store
/// only when asked for: THREADID (RFC 8474 §5.2), PREVIEW (RFC 8970) and SAVEDATE
/// (RFC 8514 §4.3).
#[derive(Default)]
struct Facts {
    threads: HashMap<EmailId, ThreadId>,
    previews: HashMap<EmailId, String>,
    save_dates: HashMap<Uid, i64>,
}

/// RFC 8970 §3.1: a preview is at most 256 characters.
const PREVIEW_CHARS: usize = 256;

impl Session {
    pub(crate) async fn cmd_fetch(&mut self, f: FetchCommand, out: &mut Vec<u8>) -> CmdResult {
        let name = if f.uid { "UID FETCH" } else { "FETCH" };
        if f.vanished && !self.enabled.qresync {
            return Err(CmdError::Bad("VANISHED needs ENABLE QRESYNC first".into()));
        }
        // RFC 7162 §3.1: CHANGEDSINCE or MODSEQ enables CONDSTORE.
        if f.changed_since.is_some() || f.attrs.contains(&FetchAttr::ModSeq) {
            self.enabled.condstore = true;
        }
        let account = self.account_id()?;
        let sel = self.selected()?;
        let mailbox = sel.id;
        let read_only = sel.read_only;
        let mut indices = sel.resolve(&f.set, f.uid)?;
        if let (true, Some(since)) = (f.vanished, f.changed_since) {
            // RFC 7162 §3.2.6: expunged UIDs in the set, before the FETCH responses.
            let largest = sel.view.last().map_or(0, |m| m.uid.0);
            let gone: Vec<u32> = self
                .store
                .expunged_since(account, mailbox, ModSeq(since))
                .await?
                .into_iter()
                .map(|u| u.0)
                .filter(|&u| f.set.contains(u, largest.max(u)))
                .collect();
            if !gone.is_empty() {
                out.extend_from_slice(
                    format!("* VANISHED (EARLIER) {}\r\n", compress_set(&gone)).as_bytes(),
                );
            }
        }
        let sel = self.selected()?;
        if let Some(since) = f.changed_since {
            indices.retain(|&i| sel.view[i].modseq.0 > since);
        }

        // Set \Seen first so the FETCH responses carry the new flags.
        let mut flags_changed: HashSet<usize> = HashSet::new();
        if !read_only && f.attrs.iter().any(sets_seen) {
            let unseen: Vec<usize> = indices
                .iter()
                .copied()
                .filter(|&i| !sel.view[i].is_seen())
                .collect();
            if !unseen.is_empty() {
                let updates = unseen
                    .iter()
                    .map(|&i| KeywordUpdate {
                        email: sel.view[i].email,
                        op: KeywordOp::Add,
                        keywords: vec!["$seen".into()],
                        unchanged_since: None,
                    })
                    .collect();
                let by_email: HashMap<EmailId, usize> =
                    unseen.iter().map(|&i| (sel.view[i].email, i)).collect();
                let result = self.store.email_set_keywords(account, updates).await?;
                let sel = self.selected_mut()?;
                for (email, modseq, keywords) in result.updated {
                    if let Some(&i) = by_email.get(&email)
                        && let Some(m) = sel.view.get_mut(i)
                    {
                        m.keywords = Keywords::from_stored(&keywords);
                        m.modseq = modseq;
                        flags_changed.insert(i);
                    }
                }
            }
        }

        let with_modseq = self.enabled.condstore
            && (f.changed_since.is_some() || f.attrs.contains(&FetchAttr::ModSeq));
        let wants_preview = f
            .attrs
            .iter()
            .any(|a| matches!(a, FetchAttr::Preview { .. }));
        let mut facts = if wants_preview || f.attrs.contains(&FetchAttr::ThreadId) {
            self.read_facts(&indices, wants_preview).await?
        } else {
            Facts::default()
        };
        if f.attrs.contains(&FetchAttr::SaveDate) {
            facts.save_dates = self.read_save_dates(&indices).await?;
        }
        let wants_content = f.attrs.iter().any(needs_content);
        // ENVELOPE as the only content item is answered from the envelopes stored at
        // delivery, without reading message content.
        let envelope_only = wants_content
            && f.attrs
                .iter()
                .all(|a| !needs_content(a) || *a == FetchAttr::Envelope);
        if envelope_only {
            return self
                .fetch_envelopes(&f, &indices, &flags_changed, with_modseq, &facts, out)
                .await;
        }
        let mut cte_error = None;
        let mut missing = 0usize;
        let batch_len = if wants_content {
            FETCH_BATCH
        } else {
            usize::MAX
        };
        let batches: Vec<&[usize]> = indices.chunks(batch_len.max(1)).collect();
        // One store read per batch instead of one per message, and the next batch is read
        // while this one is rendered.
        let mut next = match batches.first() {
            Some(b) if wants_content => Some(self.read_contents(b)?),
            _ => None,
        };
        for (k, batch) in batches.iter().enumerate() {
            let mut contents: HashMap<Uid, Vec<u8>> = match next.take() {
                Some(read) => read
                    .await
                    .map_err(|e| StoreError::Internal(format!("content read failed: {e}")))??
                    .into_iter()
                    .collect(),
                None => HashMap::new(),
            };
            if let Some(b) = batches.get(k + 1).filter(|_| wants_content) {
                next = Some(self.read_contents(b)?);
            }
            let sel = self.selected()?;
            for &i in batch.iter() {
                let Some(m) = sel.view.get(i) else {
                    continue;
                };
                let raw = if wants_content {
                    let raw = contents.remove(&m.uid);
                    if raw.is_none() {
                        // Expunged by another session but still in our view.
                        missing += 1;
                    }
                    raw
                } else {
                    None
                };
                render_message(
                    &f,
                    i,
                    m,
                    &Flags {
                        case: &self.keyword_case,
                        sel,
                        facts: &facts,
                        uidonly: self.enabled.uidonly,
                    },
                    raw.as_deref().map_or(Content::Missing, Content::Raw),
                    flags_changed.contains(&i),
                    with_modseq,
                    &mut cte_error,
                    out,
                );
                // Long responses go to the connection while they are built.
                self.spill(out).await;
            }
        }
        if let Some(e) = cte_error {
            return Err(CmdError::no("UNKNOWN-CTE", format!("{name}: {e}")));
        }
        fetch_done(name, missing)
    }

    /// FETCH whose only content item is ENVELOPE: stored envelopes are read a batch at a
    /// time (the next batch while this one is rendered); a message stored without one gets
    /// it rendered from its content, so the answer is the same either way.
    async fn fetch_envelopes(
        &mut self,
        f: &FetchCommand,
        indices: &[usize],
        flags_changed: &HashSet<usize>,
        with_modseq: bool,
        facts: &Facts,
        out: &mut Vec<u8>,
    ) -> CmdResult {
        let name = if f.uid { "UID FETCH" } else { "FETCH" };
        let mut missing = 0usize;
        let batches: Vec<&[usize]> = indices.chunks(ENVELOPE_BATCH).collect();
        let mut next = match batches.first() {
            Some(b) => Some(self.read_envelopes(b)?),
            None => None,
        };
        let mut cte_error = None;
        for (k, batch) in batches.iter().enumerate() {
            let envelopes: Vec<(Uid, Vec<u8>)> = match next.take() {
                Some(read) => read
                    .await
                    .map_err(|e| StoreError::Internal(format!("envelope read failed: {e}")))??,
                None => Vec::new(),
            };
            if let Some(b) = batches.get(k + 1) {
                next = Some(self.read_envelopes(b)?);
            }
            let sel = self.selected()?;
            // `envelopes` follows the batch's order, leaving out messages whose content is
            // gone: walk both side by side.
            let mut found = envelopes.iter().peekable();
            for &i in batch.iter() {
                let Some(m) = sel.view.get(i) else {
                    continue;
                };
                let content = match found.next_if(|(uid, _)| *uid == m.uid) {
                    Some((_, envelope)) => Content::Envelope(envelope),
                    None => {
                        // Expunged by another session but still in our view.
                        missing += 1;
                        Content::Missing
                    }
                };
                render_message(
                    f,
                    i,
                    m,
                    &Flags {
                        case: &self.keyword_case,
                        sel,
                        facts,
                        uidonly: self.enabled.uidonly,
                    },
                    content,
                    flags_changed.contains(&i),
                    with_modseq,
                    &mut cte_error,
                    out,
                );
                self.spill(out).await;
            }
        }
        fetch_done(name, missing)
    }
}

/// The tagged result of a FETCH that could not find `missing` messages' content.
fn fetch_done(name: &str, missing: usize) -> CmdResult {
    if missing > 0 {
        // RFC 9051 §7.1: EXPUNGEISSUED.
        return Err(CmdError::no(
            "EXPUNGEISSUED",
            "Some messages were expunged by another session",
        ));
    }
    Done::new(format!("{name} completed"))
}

impl Session {
    /// Starts reading the content of the view's messages at `indices` in the background.
    fn read_contents(&self, indices: &[usize]) -> Result<ContentRead, CmdError> {
        let sel = self.selected()?;
        let wanted: Vec<(Uid, BlobHash)> = indices
            .iter()
            .filter_map(|&i| sel.view.get(i).map(|m| (m.uid, m.blob.to_hash())))
            .collect();
        let store = self.store.clone();
        Ok(tokio::spawn(async move {
            let hashes: Vec<BlobHash> = wanted.iter().map(|(_, h)| h.clone()).collect();
            let blobs = store.blob_get_many(&hashes).await?;
            Ok(wanted
                .into_iter()
                .zip(blobs)
                .filter_map(|((uid, _), raw)| Some((uid, raw?)))
                .collect())
        }))
    }
}

impl Session {
    /// Starts reading the ENVELOPEs of the view's messages at `indices` in the background:
    /// stored ones in one read, the others rendered from their content (read by blob hash,
    /// so a message another session expunged still has one). UID order; messages whose
    /// content is gone are left out.
    fn read_envelopes(&self, indices: &[usize]) -> Result<ContentRead, CmdError> {
        let account = self.account_id()?;
        let sel = self.selected()?;
        let mailbox = sel.id;
        let wanted: Vec<(Uid, BlobKey)> = indices
            .iter()
            .filter_map(|&i| sel.view.get(i).map(|m| (m.uid, m.blob)))
            .collect();
        let store = self.store.clone();
        Ok(tokio::spawn(async move {
            let uids: Vec<Uid> = wanted.iter().map(|(uid, _)| *uid).collect();
            let mut stored: HashMap<Uid, Vec<u8>> = store
                .message_envelopes(account, mailbox, &uids)
                .await?
                .into_iter()
                .filter_map(|(uid, envelope)| Some((uid, envelope?)))
                .collect();
            let unstored: Vec<&(Uid, BlobKey)> = wanted
                .iter()
                .filter(|(uid, _)| !stored.contains_key(uid))
                .collect();
            let mut rendered: HashMap<Uid, Vec<u8>> = HashMap::new();
            for chunk in unstored.chunks(FETCH_BATCH) {
                let hashes: Vec<BlobHash> = chunk.iter().map(|(_, b)| b.to_hash()).collect();
                let blobs = store.blob_get_many(&hashes).await?;
                for ((uid, _), raw) in chunk.iter().zip(blobs) {
                    if let Some(raw) = raw {
                        rendered.insert(*uid, message::envelope(&raw));
                    }
                }
            }
            Ok(wanted
                .into_iter()
                .filter_map(|(uid, _)| {
                    let envelope = stored.remove(&uid).or_else(|| rendered.remove(&uid))?;
                    Some((uid, envelope))
                })
                .collect())
        }))
    }
}

impl Session {
    /// The threads (and previews) of the view's messages at `indices`, a batch of emails
    /// per store read.
    async fn read_facts(&self, indices: &[usize], previews: bool) -> Result<Facts, CmdError> {
        let account = self.account_id()?;
        let sel = self.selected()?;
        let emails: Vec<EmailId> = indices
            .iter()
            .filter_map(|&i| sel.view.get(i).map(|m| m.email))
            .collect();
        let mut facts = Facts::default();
        for chunk in emails.chunks(ENVELOPE_BATCH) {
            for e in self.store.email_get(account, chunk).await? {
                facts.threads.insert(e.id, e.thread);
                if previews {
                    facts
                        .previews
                        .insert(e.id, preview_text(&e.summary.preview));
                }
            }
        }
        Ok(facts)
    }
}

impl Session {
    /// The save dates (RFC 8514) of the view's messages at `indices`, a batch per read.
    async fn read_save_dates(&self, indices: &[usize]) -> Result<HashMap<Uid, i64>, CmdError> {
        let account = self.account_id()?;
        let sel = self.selected()?;
        let uids: Vec<Uid> = indices
            .iter()
            .filter_map(|&i| sel.view.get(i).map(|m| m.uid))
            .collect();
        let mut dates = HashMap::with_capacity(uids.len());
        for chunk in uids.chunks(ENVELOPE_BATCH) {
            dates.extend(
                self.store
                    .message_save_dates(account, sel.id, chunk)
                    .await?,
            );
        }
        Ok(dates)
    }
}

/// RFC 8970 §3.1: plain text of at most 256 characters, no line breaks or controls.
fn preview_text(stored: &str) -> String {
    stored
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(PREVIEW_CHARS)
        .collect()
}

/// A batch of message contents (or envelopes) being read.
type ContentRead = tokio::task::JoinHandle<Result<Vec<(Uid, Vec<u8>)>, StoreError>>;

/// How FLAGS are shown in this session: keyword case, and `\Recent` (RFC 3501 §2.3.2);
/// and what THREADID and PREVIEW show, when asked for.
struct Flags<'a> {
    case: &'a KeywordCase,
    sel: &'a super::Selected,
    facts: &'a Facts,
    /// RFC 9586: `UIDFETCH` responses.
    uidonly: bool,
}

impl Flags<'_> {
    fn of(&self, m: &ViewMsg) -> String {
        self.case
            .flag_list(&m.keywords.list(), self.sel.is_recent(m.uid))
    }
}

/// Writes one `* n FETCH (...)` response.
#[allow(clippy::too_many_arguments)]
fn render_message(
    f: &FetchCommand,
    i: usize,
    m: &ViewMsg,
    flags: &Flags<'_>,
    content: Content<'_>,
    flags_changed: bool,
    with_modseq: bool,
    cte_error: &mut Option<message::BinaryError>,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(super::fetch_head(flags.uidonly, i, m.uid).as_bytes());
    let mut first = true;
    let mut sep = |out: &mut Vec<u8>| {
        if !std::mem::take(&mut first) {
            out.push(b' ');
        }
    };
    // With UIDONLY the UID is the response's number (RFC 9586 §3.3).
    if f.uid && !flags.uidonly {
        sep(out);
        out.extend_from_slice(format!("UID {}", m.uid).as_bytes());
    }
    for attr in &f.attrs {
        match attr {
            FetchAttr::Uid => {
                if f.uid {
                    continue;
                }
                sep(out);
                out.extend_from_slice(format!("UID {}", m.uid).as_bytes());
            }
            FetchAttr::Flags => {
                sep(out);
                out.extend_from_slice(format!("FLAGS {}", flags.of(m)).as_bytes());
            }
            FetchAttr::InternalDate => {
                sep(out);
                out.extend_from_slice(
                    format!(
                        "INTERNALDATE \"{}\"",
                        message::format_internal_date(m.received_at)
                    )
                    .as_bytes(),
                );
            }
            FetchAttr::Rfc822Size => {
                sep(out);
                out.extend_from_slice(format!("RFC822.SIZE {}", m.size).as_bytes());
            }
            // RFC 8514 §4.3: `SAVEDATE (date-time / nil)`; NIL only for a message
            // expunged meanwhile (every mailbox here keeps save dates).
            FetchAttr::SaveDate => {
                sep(out);
                match flags.facts.save_dates.get(&m.uid) {
                    Some(&d) => out.extend_from_slice(
                        format!("SAVEDATE \"{}\"", message::format_internal_date(d)).as_bytes(),
                    ),
                    None => out.extend_from_slice(b"SAVEDATE NIL"),
                }
            }
            FetchAttr::ModSeq => continue,
            // RFC 8474 §5.3
            FetchAttr::EmailId => {
                sep(out);
                out.extend_from_slice(
                    format!("EMAILID ({})", crate::objectid::email_id(m.email)).as_bytes(),
                );
            }
            FetchAttr::ThreadId => {
                sep(out);
                // RFC 8474 §5.3: NIL when the server cannot tell (an email gone since).
                match flags.facts.threads.get(&m.email) {
                    Some(&t) => out.extend_from_slice(
                        format!("THREADID ({})", crate::objectid::thread_id(t)).as_bytes(),
                    ),
                    None => out.extend_from_slice(b"THREADID NIL"),
                }
            }
            // RFC 8970 §3.1: the stored preview (made at delivery, so LAZY gets it too);
            // NIL only for a message whose email is gone.
            FetchAttr::Preview { .. } => {
                sep(out);
                out.extend_from_slice(b"PREVIEW ");
                match flags.facts.previews.get(&m.email) {
                    Some(p) => out.extend_from_slice(&message::quoted_or_literal(p.as_bytes())),
                    None => out.extend_from_slice(b"NIL"),
                }
            }
            FetchAttr::Envelope if matches!(content, Content::Envelope(_)) => {
                if let Content::Envelope(envelope) = content {
                    sep(out);
                    out.extend_from_slice(b"ENVELOPE ");
                    // Rendered at delivery; one stored before NULs were replaced may hold one
                    // inside a literal (RFC 9051 §9: CHAR8): 0x80, as rendering now gives.
                    out.extend(envelope.iter().map(|&b| if b == 0 { 0x80 } else { b }));
                }
            }
            _ => {
                let Content::Raw(raw) = content else { continue };
                let mut item = Vec::new();
                if let Err(e) = content_item(attr, raw, &mut item) {
                    *cte_error = Some(e);
                    continue;
                }
                sep(out);
                out.extend_from_slice(&item);
            }
        }
    }
    if flags_changed && !f.attrs.contains(&FetchAttr::Flags) {
        sep(out);
        out.extend_from_slice(format!("FLAGS {}", flags.of(m)).as_bytes());
    }
    if with_modseq {
        sep(out);
        out.extend_from_slice(format!("MODSEQ ({})", m.modseq).as_bytes());
    }
    out.extend_from_slice(b")\r\n");
}

/// Renders one content item (`ENVELOPE`, `BODY[...]`, `BINARY[...]`, ...) into `item`.
fn content_item(
    attr: &FetchAttr,
    raw: &[u8],
    item: &mut Vec<u8>,
) -> Result<(), message::BinaryError> {
    match attr {
        FetchAttr::Envelope => {
            item.extend_from_slice(b"ENVELOPE ");
            item.extend_from_slice(&message::envelope(raw));
        }
        FetchAttr::Body => {
            item.extend_from_slice(b"BODY ");
            item.extend_from_slice(&message::body_structure(raw, false));
        }
        FetchAttr::BodyStructure => {
            item.extend_from_slice(b"BODYSTRUCTURE ");
            item.extend_from_slice(&message::body_structure(raw, true));
        }
        FetchAttr::Rfc822 => {
            item.extend_from_slice(b"RFC822 ");
            literal(item, raw, false);
        }
        FetchAttr::Rfc822Header | FetchAttr::Rfc822Text => {
            let (label, text) = if *attr == FetchAttr::Rfc822Header {
                ("RFC822.HEADER ", SectionText::Header)
            } else {
                ("RFC822.TEXT ", SectionText::Text)
            };
            item.extend_from_slice(label.as_bytes());
            let data = message::section(
                raw,
                &Section {
                    part: vec![],
                    text: Some(text),
                },
            )
            .unwrap_or_default();
            literal(item, &data, false);
        }
        FetchAttr::BodySection {
            section, partial, ..
        } => {
            item.extend_from_slice(format!("BODY[{}]", section_label(section)).as_bytes());
            if let Some((origin, _)) = partial {
                item.extend_from_slice(format!("<{origin}>").as_bytes());
            }
            item.push(b' ');
            match message::section(raw, section) {
                Some(data) => literal(item, apply_partial(&data, *partial), false),
                None => item.extend_from_slice(b"NIL"),
            }
        }
        FetchAttr::Binary { part, partial, .. } => {
            let label: Vec<String> = part.iter().map(|p| p.to_string()).collect();
            item.extend_from_slice(format!("BINARY[{}]", label.join(".")).as_bytes());
            if let Some((origin, _)) = partial {
                item.extend_from_slice(format!("<{origin}>").as_bytes());
            }
            item.push(b' ');
            match message::binary(raw, part)? {
                Some(data) => literal(item, apply_partial(&data, *partial), true),
                None => item.extend_from_slice(b"NIL"),
            }
        }
        FetchAttr::BinarySize { part } => {
            let label: Vec<String> = part.iter().map(|p| p.to_string()).collect();
            let size = message::binary_size(raw, part)?.unwrap_or(0);
            item.extend_from_slice(format!("BINARY.SIZE[{}] {size}", label.join(".")).as_bytes());
        }
        FetchAttr::Flags
        | FetchAttr::InternalDate
        | FetchAttr::Rfc822Size
        | FetchAttr::Uid
        | FetchAttr::ModSeq
        | FetchAttr::EmailId
        | FetchAttr::ThreadId
        | FetchAttr::Preview { .. }
        | FetchAttr::SaveDate => {}
    }
    Ok(())
}

#[cfg(test)]
#[path = "fetch_tests.rs"]
mod tests;
