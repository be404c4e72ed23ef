//! Command dispatch and the commands of the any / not-authenticated / authenticated
//! states (RFC 9051 §6.1–§6.3 and extensions).

use super::ast::*;
use super::lexer::{Cursor, PResult};
use super::{ParseError, fetch, search};
use crate::limits::{MAX_ID_FIELDS, MAX_MAILBOX_NAME_LEN};

/// Most resources one SETQUOTA may name (RFC 9208 defines four).
const MAX_QUOTA_RESOURCES: usize = 16;

pub(super) fn parse_body(name: &str, c: &mut Cursor<'_>) -> PResult<CommandBody> {
    let body = match name {
        "CAPABILITY" => CommandBody::Capability,
        "NOOP" => CommandBody::Noop,
        "LOGOUT" => CommandBody::Logout,
        "STARTTLS" => CommandBody::StartTls,
        "NAMESPACE" => CommandBody::Namespace,
        "IDLE" => CommandBody::Idle,
        "CHECK" => CommandBody::Check,
        "CLOSE" => CommandBody::Close,
        "UNSELECT" => CommandBody::Unselect,
        "EXPUNGE" => CommandBody::Expunge { uids: None },
        "ID" => id(c)?,
        "LOGIN" => login(c)?,
        "AUTHENTICATE" => authenticate(c)?,
        "ENABLE" => enable(c)?,
        "SELECT" | "EXAMINE" => select(c, name == "EXAMINE")?,
        "CREATE" => create(c)?,
        "DELETE" => CommandBody::Delete {
            mailbox: arg_mailbox(c)?,
        },
        "SUBSCRIBE" => CommandBody::Subscribe {
            mailbox: arg_mailbox(c)?,
        },
        "UNSUBSCRIBE" => CommandBody::Unsubscribe {
            mailbox: arg_mailbox(c)?,
        },
        "RENAME" => {
            let from = arg_mailbox(c)?;
            let to = arg_mailbox(c)?;
            CommandBody::Rename { from, to }
        }
        "LIST" => list(c)?,
        "LSUB" => {
            c.sp()?;
            let reference = mailbox_name(c)?;
            c.sp()?;
            let pattern = c.list_mailbox("mailbox pattern")?;
            CommandBody::Lsub { reference, pattern }
        }
        "STATUS" => status(c)?,
        "APPEND" => append(c)?,
        "SEARCH" => CommandBody::Search(search::search(c, false)?),
        "FETCH" => CommandBody::Fetch(fetch::fetch(c, false)?),
        "STORE" => CommandBody::Store(fetch::store(c, false)?),
        "COPY" | "MOVE" => fetch::copy_move(c, false, name == "MOVE")?,
        "SORT" => CommandBody::Sort(search::sort(c, false)?),
        "THREAD" => CommandBody::Thread(search::thread(c, false)?),
        "UID" => uid(c)?,
        "REPLACE" => replace(c, false)?,
        "CANCELUPDATE" => cancel_update(c)?,
        "GETQUOTA" => {
            c.sp()?;
            CommandBody::GetQuota {
                root: c.astring_utf8("quota root")?,
            }
        }
        "GETQUOTAROOT" => CommandBody::GetQuotaRoot {
            mailbox: arg_mailbox(c)?,
        },
        "SETQUOTA" => set_quota(c)?,
        "GETMETADATA" => get_metadata(c)?,
        "SETMETADATA" => set_metadata(c)?,
        "GENURLAUTH" => gen_url_auth(c)?,
        "RESETKEY" => reset_key(c)?,
        "URLFETCH" => url_fetch(c)?,
        "NOTIFY" => notify(c)?,
        _ => return Err(ParseError::syntax(&format!("Unknown command {name}"))),
    };
    c.end()?;
    Ok(body)
}

/// `UID (COPY / MOVE / FETCH / SEARCH / STORE / EXPUNGE / SORT / THREAD)`.
fn uid(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    c.sp()?;
    let name = c.keyword("UID command name")?;
    Ok(match name.as_str() {
        "SEARCH" => CommandBody::Search(search::search(c, true)?),
        "FETCH" => CommandBody::Fetch(fetch::fetch(c, true)?),
        "STORE" => CommandBody::Store(fetch::store(c, true)?),
        "COPY" | "MOVE" => fetch::copy_move(c, true, name == "MOVE")?,
        "SORT" => CommandBody::Sort(search::sort(c, true)?),
        "THREAD" => CommandBody::Thread(search::thread(c, true)?),
        "REPLACE" => replace(c, true)?,
        "EXPUNGE" => {
            // RFC 4315 §2.1
            c.sp()?;
            CommandBody::Expunge {
                uids: Some(c.sequence_set()?),
            }
        }
        _ => return Err(ParseError::syntax(&format!("Unknown UID command {name}"))),
    })
}

/// `mailbox = "INBOX" / astring`; INBOX is case-insensitive (RFC 9051 §5.1), and so is
/// its prefix for children (as Dovecot does).
pub(super) fn mailbox_name(c: &mut Cursor<'_>) -> PResult<String> {
    let name = c.astring_utf8("mailbox name")?;
    if name.len() > MAX_MAILBOX_NAME_LEN {
        return Err(ParseError::syntax("mailbox name too long"));
    }
    Ok(normalize_inbox(name))
}

pub(crate) fn normalize_inbox(name: String) -> String {
    if name.eq_ignore_ascii_case("INBOX") {
        return "INBOX".into();
    }
    match name.get(..6) {
        Some(p) if p.eq_ignore_ascii_case("INBOX/") => format!("INBOX/{}", &name[6..]),
        _ => name,
    }
}

fn arg_mailbox(c: &mut Cursor<'_>) -> PResult<String> {
    c.sp()?;
    mailbox_name(c)
}

fn login(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    c.sp()?;
    let user = c.astring_utf8("user name")?;
    c.sp()?;
    let password = c.astring_utf8("password")?;
    Ok(CommandBody::Login { user, password })
}

/// `AUTHENTICATE SP auth-type [SP (base64 / "=")]` (RFC 9051 §6.2.2, RFC 4959).
fn authenticate(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    c.sp()?;
    let mechanism = c.keyword("authentication mechanism")?;
    let initial = if c.try_byte(b' ') {
        if c.try_byte(b'=') {
            Some(String::new())
        } else {
            let s = c.atom("initial response")?;
            if !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
            {
                return Err(ParseError::expected("base64 initial response"));
            }
            Some(s.to_string())
        }
    } else {
        None
    };
    Ok(CommandBody::Authenticate { mechanism, initial })
}

/// `nstring`
fn nstring(c: &mut Cursor<'_>, what: &str) -> PResult<Option<String>> {
    if c.try_word("NIL") {
        return Ok(None);
    }
    let s = c.string(what)?;
    Ok(Some(String::from_utf8_lossy(&s).into_owned()))
}

/// `id = "ID" SP id-params-list` (RFC 2971 §3.3).
fn id(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    c.sp()?;
    let mut fields = Vec::new();
    if c.try_word("NIL") {
        return Ok(CommandBody::Id(fields));
    }
    c.expect(b'(')?;
    if c.try_byte(b')') {
        return Ok(CommandBody::Id(fields));
    }
    loop {
        let key = c.string("ID field name")?;
        c.sp()?;
        let value = nstring(c, "ID field value")?;
        if fields.len() >= MAX_ID_FIELDS {
            return Err(ParseError::syntax("too many ID fields"));
        }
        fields.push((String::from_utf8_lossy(&key).into_owned(), value));
        if c.try_byte(b')') {
            return Ok(CommandBody::Id(fields));
        }
        c.sp()?;
    }
}

fn enable(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    let mut caps = Vec::new();
    while c.try_byte(b' ') {
        caps.push(c.keyword("capability name")?);
    }
    if caps.is_empty() {
        return Err(ParseError::expected("capability name"));
    }
    Ok(CommandBody::Enable(caps))
}

/// `select-params` (RFC 4466 §2.1; RFC 7162 §3.1.8 CONDSTORE, §3.2.5 QRESYNC).
fn select(c: &mut Cursor<'_>, read_only: bool) -> PResult<CommandBody> {
    let mailbox = arg_mailbox(c)?;
    let mut params = SelectParams::default();
    if c.try_byte(b' ') {
        c.expect(b'(')?;
        loop {
            let name = c.keyword("select parameter")?;
            match name.as_str() {
                "CONDSTORE" => params.condstore = true,
                "QRESYNC" => {
                    c.sp()?;
                    params.qresync = Some(qresync_params(c)?);
                }
                _ => {
                    return Err(ParseError::syntax(&format!(
                        "unknown select parameter {name}"
                    )));
                }
            }
            if c.try_byte(b')') {
                break;
            }
            c.sp()?;
        }
    }
    Ok(CommandBody::Select {
        mailbox,
        read_only,
        params,
    })
}

fn qresync_params(c: &mut Cursor<'_>) -> PResult<QresyncParams> {
    c.expect(b'(')?;
    let uid_validity = c.nz_number("UIDVALIDITY")?;
    c.sp()?;
    let modseq = c.number64("mod-sequence value")?;
    let mut known_uids = None;
    let mut seq_match = None;
    if c.try_byte(b' ') {
        if c.peek() == Some(b'(') {
            seq_match = Some(seq_match_data(c)?);
        } else {
            known_uids = Some(c.sequence_set()?);
            if c.try_byte(b' ') {
                seq_match = Some(seq_match_data(c)?);
            }
        }
    }
    c.expect(b')')?;
    Ok(QresyncParams {
        uid_validity,
        modseq,
        known_uids,
        seq_match,
    })
}

fn seq_match_data(c: &mut Cursor<'_>) -> PResult<(SequenceSet, SequenceSet)> {
    c.expect(b'(')?;
    let seqs = c.sequence_set()?;
    c.sp()?;
    let uids = c.sequence_set()?;
    c.expect(b')')?;
    Ok((seqs, uids))
}

/// LIST with RFC 5258 options and RFC 5819 `RETURN (STATUS (...))`.
fn list(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    let mut cmd = ListCommand::default();
    c.sp()?;
    if c.try_byte(b'(') {
        if !c.try_byte(b')') {
            loop {
                let opt = c.keyword("selection option")?;
                match opt.as_str() {
                    "SUBSCRIBED" => cmd.select_subscribed = true,
                    "REMOTE" => {}
                    "RECURSIVEMATCH" => cmd.select_recursive_match = true,
                    "SPECIAL-USE" => cmd.select_special_use = true,
                    _ => {
                        return Err(ParseError::syntax(&format!(
                            "unknown selection option {opt}"
                        )));
                    }
                }
                if c.try_byte(b')') {
                    break;
                }
                c.sp()?;
            }
        }
        c.sp()?;
    }
    // RFC 5258 §3: RECURSIVEMATCH needs another selection option.
    if cmd.select_recursive_match && !cmd.select_subscribed && !cmd.select_special_use {
        return Err(ParseError::syntax(
            "RECURSIVEMATCH needs another selection option",
        ));
    }
    cmd.reference = mailbox_name(c)?;
    c.sp()?;
    if c.try_byte(b'(') {
        loop {
            cmd.patterns.push(c.list_mailbox("mailbox pattern")?);
            if c.try_byte(b')') {
                break;
            }
            c.sp()?;
        }
    } else {
        cmd.patterns.push(c.list_mailbox("mailbox pattern")?);
    }
    if c.try_byte(b' ') {
        if !c.try_word("RETURN") {
            return Err(ParseError::expected("RETURN"));
        }
        c.sp()?;
        c.expect(b'(')?;
        if !c.try_byte(b')') {
            loop {
                let opt = c.keyword("return option")?;
                match opt.as_str() {
                    "SUBSCRIBED" => cmd.return_subscribed = true,
                    "CHILDREN" => cmd.return_children = true,
                    "SPECIAL-USE" => cmd.return_special_use = true,
                    "STATUS" => {
                        c.sp()?;
                        cmd.return_status = Some(status_items(c)?);
                    }
                    _ => return Err(ParseError::syntax(&format!("unknown return option {opt}"))),
                }
                if c.try_byte(b')') {
                    break;
                }
                c.sp()?;
            }
        }
    }
    Ok(CommandBody::List(cmd))
}

/// Most items in one STATUS list (nine are known; repeats are allowed but bounded).
const MAX_STATUS_ITEMS: usize = 32;

/// Most special-use attributes in one `CREATE ... (USE (...))`.
const MAX_USE_ATTRS: usize = 16;

/// `create = "CREATE" SP mailbox [create-params]` (RFC 4466 §2.2), with RFC 6154 §6
/// `create-param =/ "USE" SP "(" [use-attr *(SP use-attr)] ")"`.
fn create(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    let mailbox = arg_mailbox(c)?;
    let mut special_use = Vec::new();
    if c.try_byte(b' ') {
        c.expect(b'(')?;
        loop {
            let param = c.keyword("create parameter")?;
            if param != "USE" {
                return Err(ParseError::syntax(&format!(
                    "unknown CREATE parameter {param}"
                )));
            }
            c.sp()?;
            c.expect(b'(')?;
            if !c.try_byte(b')') {
                loop {
                    if special_use.len() >= MAX_USE_ATTRS {
                        return Err(ParseError::syntax("too many special-use attributes"));
                    }
                    c.expect(b'\\')?;
                    special_use.push(format!("\\{}", c.atom("special-use attribute")?));
                    if c.try_byte(b')') {
                        break;
                    }
                    c.sp()?;
                }
            }
            if c.try_byte(b')') {
                break;
            }
            c.sp()?;
        }
    }
    Ok(CommandBody::Create {
        mailbox,
        special_use,
    })
}

fn status_items(c: &mut Cursor<'_>) -> PResult<Vec<StatusItem>> {
    c.expect(b'(')?;
    let mut items = Vec::new();
    loop {
        if items.len() >= MAX_STATUS_ITEMS {
            return Err(ParseError::syntax("too many status items"));
        }
        let name = c.keyword("status item")?;
        items.push(match name.as_str() {
            "MESSAGES" => StatusItem::Messages,
            "UIDNEXT" => StatusItem::UidNext,
            "UIDVALIDITY" => StatusItem::UidValidity,
            "UNSEEN" => StatusItem::Unseen,
            "DELETED" => StatusItem::Deleted,
            "DELETED-STORAGE" => StatusItem::DeletedStorage,
            "SIZE" => StatusItem::Size,
            "HIGHESTMODSEQ" => StatusItem::HighestModSeq,
            "RECENT" => StatusItem::Recent,
            "MAILBOXID" => StatusItem::MailboxId,
            _ => return Err(ParseError::syntax(&format!("unknown status item {name}"))),
        });
        if c.try_byte(b')') {
            return Ok(items);
        }
        c.sp()?;
    }
}

fn status(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    let mailbox = arg_mailbox(c)?;
    c.sp()?;
    let items = status_items(c)?;
    Ok(CommandBody::Status { mailbox, items })
}

/// `append = "APPEND" SP mailbox 1*append-message` with
/// `append-message = [SP flag-list] [SP date-time] SP literal` (RFC 9051 §6.3.12; more than
/// one message is RFC 3502 §6.3.11 MULTIAPPEND). The framing bounds the count
/// ([`crate::limits::MAX_LITERALS_PER_COMMAND`]) and the total size.
fn append(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    let mailbox = arg_mailbox(c)?;
    let first = append_message(c)?;
    let mut more = Vec::new();
    while !c.eof() {
        if more.len() >= crate::limits::MAX_LITERALS_PER_COMMAND {
            return Err(ParseError::syntax("too many messages in one APPEND"));
        }
        more.push(append_message(c)?);
    }
    Ok(CommandBody::Append {
        mailbox,
        flags: first.flags,
        date: first.date,
        message: first.message,
        catenate: first.catenate,
        more,
    })
}

/// Most tags in one CANCELUPDATE.
const MAX_CANCEL_TAGS: usize = 16;

/// RFC 5267 §5: `cancelupdate = "CANCELUPDATE" 1*(SP tag-string)`, `tag-string = string`.
fn cancel_update(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    let mut tags = Vec::new();
    while c.try_byte(b' ') {
        if tags.len() >= MAX_CANCEL_TAGS {
            return Err(ParseError::syntax("too many tags in CANCELUPDATE"));
        }
        let tag = c.string("tag string")?;
        tags.push(String::from_utf8(tag).map_err(|_| ParseError::expected("tag string"))?);
    }
    if tags.is_empty() {
        return Err(ParseError::expected("tag string"));
    }
    Ok(CommandBody::CancelUpdate(tags))
}

/// RFC 8508 §6: `replace = "REPLACE" SP seq-number SP mailbox append-message`, and
/// `"UID" SP "REPLACE" SP uniqueid SP mailbox append-message`.
fn replace(c: &mut Cursor<'_>, uid: bool) -> PResult<CommandBody> {
    c.sp()?;
    let target = if c.try_byte(b'*') {
        if uid {
            return Err(ParseError::expected("UID"));
        }
        SeqBound::Star
    } else {
        SeqBound::Value(c.nz_number(if uid { "UID" } else { "sequence number" })?)
    };
    let mailbox = arg_mailbox(c)?;
    let message = append_message(c)?;
    Ok(CommandBody::Replace {
        uid,
        target,
        mailbox,
        message,
    })
}

fn append_message(c: &mut Cursor<'_>) -> PResult<AppendMessage> {
    c.sp()?;
    // IMAPClient 3 (`multiappend`) sends two spaces between messages; accepted, as a
    // strict parser would refuse every MULTIAPPEND of that client. The line length bounds it.
    while c.try_byte(b' ') {}
    let mut flags = Vec::new();
    let mut date = None;
    if c.peek() == Some(b'(') {
        flags = c.flag_list()?;
        c.sp()?;
    }
    if c.peek() == Some(b'"') {
        date = Some(c.date_time()?);
        c.sp()?;
    }
    if c.try_word("CATENATE ") {
        return Ok(AppendMessage {
            flags,
            date,
            message: Vec::new(),
            catenate: catenate_parts(c)?,
        });
    }
    if !c.at_literal() {
        return Err(ParseError::expected("message literal"));
    }
    let message = c.string("message literal")?;
    Ok(AppendMessage {
        flags,
        date,
        message,
        catenate: Vec::new(),
    })
}

/// Most parts of one CATENATE (RFC 4469 leaves the number to the server).
pub(crate) const MAX_CATENATE_PARTS: usize = 64;

/// RFC 4469 §5: `"(" cat-part *(SP cat-part) ")"`, `cat-part = text-literal / url`,
/// `text-literal = "TEXT" SP literal` (a `literal8` too, as RFC 3516 allows), `url = "URL"
/// SP astring`.
fn catenate_parts(c: &mut Cursor<'_>) -> PResult<Vec<CatPart>> {
    c.expect(b'(')?;
    let mut parts = Vec::new();
    loop {
        if parts.len() >= MAX_CATENATE_PARTS {
            return Err(ParseError::syntax("too many CATENATE parts"));
        }
        let kind = c.keyword("CATENATE part")?;
        c.sp()?;
        parts.push(match kind.as_str() {
            "TEXT" => {
                if !c.at_literal() {
                    return Err(ParseError::expected("TEXT literal"));
                }
                CatPart::Text(c.string("TEXT literal")?)
            }
            "URL" => CatPart::Url(c.astring_utf8("URL")?),
            other => {
                return Err(ParseError::syntax(&format!(
                    "unknown CATENATE part {other}"
                )));
            }
        });
        if c.try_byte(b')') {
            return Ok(parts);
        }
        c.sp()?;
    }
}

/// Most entries one GETMETADATA or SETMETADATA names.
const MAX_METADATA_ENTRIES: usize = 256;

/// An entry name (RFC 5464 §5 `entry = astring`); checked against §3.2 by the session.
fn metadata_entry(c: &mut Cursor<'_>) -> PResult<String> {
    c.astring_utf8("metadata entry name")
}

/// RFC 9208 §6: `setquota = "SETQUOTA" SP quota-root SP setquota-list`, `setquota-list =
/// "(" [setquota-resource *(SP setquota-resource)] ")"`, `setquota-resource = resource-name
/// SP resource-limit` (parsed in full so a bad one is BAD, then refused as a whole).
fn set_quota(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    c.sp()?;
    let root = c.astring_utf8("quota root")?;
    c.sp()?;
    c.expect(b'(')?;
    let mut n = 0;
    while !c.try_byte(b')') {
        if n > 0 {
            c.sp()?;
        }
        n += 1;
        if n > MAX_QUOTA_RESOURCES {
            return Err(ParseError::syntax("too many resources in SETQUOTA"));
        }
        c.keyword("resource name")?;
        c.sp()?;
        c.number64("resource limit")?;
    }
    Ok(CommandBody::SetQuota { root })
}

/// RFC 5464 §5: `getmetadata = "GETMETADATA" [SP getmetadata-options] SP mailbox SP
/// entries`, `getmetadata-options = "(" getmetadata-option *(SP getmetadata-option) ")"`
/// (`MAXSIZE number`, `DEPTH ("0" / "1" / "infinity")`), `entries = entry / "(" entry
/// *(SP entry) ")"`.
fn get_metadata(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    c.sp()?;
    let mut max_size = None;
    let mut depth = MetadataDepth::Zero;
    if c.try_byte(b'(') {
        loop {
            let option = c.keyword("GETMETADATA option")?;
            c.sp()?;
            match option.as_str() {
                "MAXSIZE" => max_size = Some(c.number64("MAXSIZE")?),
                "DEPTH" => {
                    depth = match c.keyword("DEPTH")?.as_str() {
                        "0" => MetadataDepth::Zero,
                        "1" => MetadataDepth::One,
                        "INFINITY" => MetadataDepth::Infinity,
                        other => {
                            return Err(ParseError::syntax(&format!(
                                "DEPTH must be 0, 1 or infinity, not {other}"
                            )));
                        }
                    }
                }
                other => {
                    return Err(ParseError::syntax(&format!(
                        "unknown GETMETADATA option {other}"
                    )));
                }
            }
            if c.try_byte(b')') {
                break;
            }
            c.sp()?;
        }
        c.sp()?;
    }
    let mailbox = mailbox_name(c)?;
    c.sp()?;
    let mut entries = Vec::new();
    if c.try_byte(b'(') {
        loop {
            if entries.len() >= MAX_METADATA_ENTRIES {
                return Err(ParseError::syntax("too many entries in GETMETADATA"));
            }
            entries.push(metadata_entry(c)?);
            if c.try_byte(b')') {
                break;
            }
            c.sp()?;
        }
    } else {
        entries.push(metadata_entry(c)?);
    }
    Ok(CommandBody::GetMetadata {
        mailbox,
        entries,
        max_size,
        depth,
    })
}

/// RFC 5464 §5: `setmetadata = "SETMETADATA" SP mailbox SP list-of-entry-values`,
/// `list-of-entry-values = "(" entry-value *(SP entry-value) ")"`, `entry-value = entry SP
/// value`, `value = nstring / literal8`.
fn set_metadata(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    let mailbox = arg_mailbox(c)?;
    c.sp()?;
    c.expect(b'(')?;
    let mut entries = Vec::new();
    loop {
        if entries.len() >= MAX_METADATA_ENTRIES {
            return Err(ParseError::syntax("too many entries in SETMETADATA"));
        }
        let entry = metadata_entry(c)?;
        c.sp()?;
        let value = if c.try_word("NIL") {
            None
        } else {
            Some(c.string("metadata value")?)
        };
        entries.push((entry, value));
        if c.try_byte(b')') {
            break;
        }
        c.sp()?;
    }
    Ok(CommandBody::SetMetadata { mailbox, entries })
}

/// Most URLs in one GENURLAUTH or URLFETCH.
const MAX_URLS: usize = 32;

/// RFC 4467 §9: `genurlauth = "GENURLAUTH" 1*(SP url-rump SP mechanism)`.
fn gen_url_auth(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    let mut pairs = Vec::new();
    while c.try_byte(b' ') {
        if pairs.len() >= MAX_URLS {
            return Err(ParseError::syntax("too many URLs in GENURLAUTH"));
        }
        let url = c.astring_utf8("URL")?;
        c.sp()?;
        let mechanism = c.keyword("URLAUTH mechanism")?;
        pairs.push((url, mechanism));
    }
    if pairs.is_empty() {
        return Err(ParseError::expected("URL"));
    }
    Ok(CommandBody::GenUrlAuth(pairs))
}

/// RFC 4467 §9: `resetkey = "RESETKEY" [SP mailbox *(SP mechanism)]`.
fn reset_key(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    if !c.try_byte(b' ') {
        return Ok(CommandBody::ResetKey {
            mailbox: None,
            mechanisms: Vec::new(),
        });
    }
    let mailbox = mailbox_name(c)?;
    let mut mechanisms = Vec::new();
    while c.try_byte(b' ') {
        if mechanisms.len() >= MAX_URLS {
            return Err(ParseError::syntax("too many mechanisms in RESETKEY"));
        }
        mechanisms.push(c.keyword("URLAUTH mechanism")?);
    }
    Ok(CommandBody::ResetKey {
        mailbox: Some(mailbox),
        mechanisms,
    })
}

/// RFC 4467 §9: `urlfetch = "URLFETCH" 1*(SP url)`.
fn url_fetch(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    let mut urls = Vec::new();
    while c.try_byte(b' ') {
        if urls.len() >= MAX_URLS {
            return Err(ParseError::syntax("too many URLs in URLFETCH"));
        }
        urls.push(c.astring_utf8("URL")?);
    }
    if urls.is_empty() {
        return Err(ParseError::expected("URL"));
    }
    Ok(CommandBody::UrlFetch(urls))
}

/// Most event groups, events per group and mailboxes per filter of one NOTIFY.
const MAX_NOTIFY_ITEMS: usize = 64;

/// RFC 5465 §8: `notify = "NOTIFY" SP (notify-set / notify-none)`, `notify-set = "SET"
/// [status-indicator] SP event-groups`, `event-group = "(" filter-mailboxes SP events ")"`.
fn notify(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    c.sp()?;
    match c.keyword("NOTIFY SET or NONE")?.as_str() {
        "NONE" => return Ok(CommandBody::Notify(None)),
        "SET" => {}
        other => {
            return Err(ParseError::syntax(&format!(
                "NOTIFY {other}: expected SET or NONE"
            )));
        }
    }
    c.sp()?;
    let status = c.try_word("STATUS ");
    let mut groups = Vec::new();
    loop {
        if groups.len() >= MAX_NOTIFY_ITEMS {
            return Err(ParseError::syntax("too many NOTIFY event groups"));
        }
        c.expect(b'(')?;
        let filter = notify_filter(c)?;
        c.sp()?;
        let events = notify_events(c)?;
        c.expect(b')')?;
        groups.push(NotifyGroup { filter, events });
        if !c.try_byte(b' ') {
            break;
        }
    }
    Ok(CommandBody::Notify(Some(NotifySet { status, groups })))
}

/// `filter-mailboxes = "SELECTED" / "SELECTED-DELAYED" / "INBOXES" / "PERSONAL" /
/// "SUBSCRIBED" / ("SUBTREE" SP one-or-more-mailbox) / ("MAILBOXES" SP one-or-more-mailbox)`.
fn notify_filter(c: &mut Cursor<'_>) -> PResult<NotifyFilter> {
    let name = c.keyword("NOTIFY filter")?;
    Ok(match name.as_str() {
        "SELECTED" => NotifyFilter::Selected,
        "SELECTED-DELAYED" => NotifyFilter::SelectedDelayed,
        "INBOXES" => NotifyFilter::Inboxes,
        "PERSONAL" => NotifyFilter::Personal,
        "SUBSCRIBED" => NotifyFilter::Subscribed,
        "SUBTREE" | "MAILBOXES" => {
            c.sp()?;
            let mut names = Vec::new();
            if c.try_byte(b'(') {
                loop {
                    if names.len() >= MAX_NOTIFY_ITEMS {
                        return Err(ParseError::syntax("too many mailboxes in a NOTIFY filter"));
                    }
                    names.push(mailbox_name(c)?);
                    if c.try_byte(b')') {
                        break;
                    }
                    c.sp()?;
                }
            } else {
                names.push(mailbox_name(c)?);
            }
            if name == "SUBTREE" {
                NotifyFilter::Subtree(names)
            } else {
                NotifyFilter::Mailboxes(names)
            }
        }
        other => {
            return Err(ParseError::syntax(&format!(
                "unknown NOTIFY filter {other}"
            )));
        }
    })
}

/// `events = ( "(" event *(SP event) ")" ) / "NONE"`, `message-new = "MessageNew" [SP "("
/// fetch-att *(SP fetch-att) ")"]`.
fn notify_events(c: &mut Cursor<'_>) -> PResult<Vec<NotifyEvent>> {
    if c.try_word("NONE") {
        return Ok(Vec::new());
    }
    c.expect(b'(')?;
    let mut events = Vec::new();
    loop {
        if events.len() >= MAX_NOTIFY_ITEMS {
            return Err(ParseError::syntax("too many NOTIFY events"));
        }
        let name = c.keyword("NOTIFY event")?;
        events.push(match name.as_str() {
            "MESSAGENEW" => {
                let mut attrs = Vec::new();
                if c.try_word(" (") {
                    loop {
                        if attrs.len() >= MAX_NOTIFY_ITEMS {
                            return Err(ParseError::syntax("too many FETCH items in MessageNew"));
                        }
                        attrs.push(fetch::fetch_att(c)?);
                        if c.try_byte(b')') {
                            break;
                        }
                        c.sp()?;
                    }
                }
                NotifyEvent::MessageNew(attrs)
            }
            "MESSAGEEXPUNGE" => NotifyEvent::MessageExpunge,
            "FLAGCHANGE" => NotifyEvent::FlagChange,
            "ANNOTATIONCHANGE" => NotifyEvent::AnnotationChange,
            "MAILBOXNAME" => NotifyEvent::MailboxName,
            "SUBSCRIPTIONCHANGE" => NotifyEvent::SubscriptionChange,
            "MAILBOXMETADATACHANGE" => NotifyEvent::MailboxMetadataChange,
            "SERVERMETADATACHANGE" => NotifyEvent::ServerMetadataChange,
            _ => NotifyEvent::Other(name),
        });
        if c.try_byte(b')') {
            return Ok(events);
        }
        c.sp()?;
    }
}
