//! `bulwark migrate ACCOUNT --from imaps://USER@HOST`: copies every folder of a running IMAP
//! server into the account, incrementally, as imapsync does.
//!
//! * **What was copied is remembered per folder** in the account collection
//!   `imap-migration:{key}` (key: a hash of the source URL and the folder): the folder's
//!   UIDVALIDITY and, in chunks of [`UIDS_PER_ITEM`] UIDs, source UID → Bulwark email id.
//!   Every node and a later run see it; nothing is kept in `data_dir`.
//! * **Re-runs copy only what is new** (UIDs not in that map) and **sync flags** of what was
//!   copied before: the source's flags replace the copy's keywords where they differ.
//! * **Resumable**: each batch is stored, then its UIDs are recorded. A run that stops in
//!   between (the source drops the connection, the store goes away, Ctrl-C) is resumed by
//!   running the same command; a message whose record was lost is found by its exact bytes
//!   in the folder and claimed instead of copied twice.
//! * If the source's UIDVALIDITY changed (RFC 3501 §2.3.1.1: its UIDs mean other messages now),
//!   the map is dropped and the folder compared anew by content.
//! * The source is only read: EXAMINE and `BODY.PEEK[]`, so its `\Seen` flags stay.
//! * Messages deleted at the source after a run stay here; messages deleted here are not
//!   brought back (the map says they were copied).

use super::client::{Client, Examined, Folder, MessageInfo, Source};
use crate::flags;
use crate::import::ensure_mailbox;
use anyhow::anyhow;
use bulwark_core::keyword_case::{self, KeywordCase};
use bulwark_store::{
    AccountId, BlobHash, EmailId, Expect, ItemWrite, KeywordOp, KeywordUpdate, Mailbox, MailboxId,
    NewEmail, Role, Store, StoreError,
};
use futures::StreamExt as _;
use sha2::Digest as _;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Collection prefix of the per-folder migration records.
pub const COLLECTION_PREFIX: &str = "imap-migration:";
/// Source UIDs per record item (one item: UID / this).
pub const UIDS_PER_ITEM: u32 = 4096;
/// Messages (and bytes) fetched and stored per round.
const BATCH: usize = 100;
const BATCH_BYTES: u64 = 8 << 20;
/// Keyword updates per store call.
const FLAG_BATCH: usize = 500;
/// Most folders copied at once (`--jobs`).
pub const MAX_JOBS: usize = 16;
/// Failures kept word for word.
const MAX_FAILURE_LINES: usize = 1000;

#[derive(Clone)]
pub struct MigrateOptions {
    pub source: Source,
    pub password: String,
    pub tls: Arc<rustls::ClientConfig>,
    /// Say what would be done; write nothing.
    pub dry_run: bool,
    /// Folders copied at once, each over its own connection (1..=[`MAX_JOBS`]).
    pub jobs: usize,
    /// Larger messages are not copied (`[limits] max_message_size`).
    pub max_message_size: usize,
}

#[derive(Debug, Clone, Default)]
pub struct MigrateSummary {
    /// Selectable folders at the source.
    pub folders: usize,
    /// Folders fully done this run.
    pub folders_done: usize,
    pub messages_at_source: u64,
    /// Copied this run (with `dry_run`: would be copied).
    pub copied: u64,
    /// Copied by an earlier run (or found here with the same bytes).
    pub already: u64,
    /// Copies whose keywords were set to the source's flags (with `dry_run`: would be).
    pub flags_updated: u64,
    pub failed: u64,
    pub failures: Vec<String>,
    /// With `dry_run`: folders that would be created.
    pub folders_created: Vec<String>,
    pub bytes: u64,
    pub elapsed: Duration,
}

impl MigrateSummary {
    /// Messages handled per second (copied or found copied).
    pub fn rate(&self) -> f64 {
        (self.copied + self.already) as f64 / self.elapsed.as_secs_f64().max(1e-3)
    }

    fn fail(&mut self, what: String) {
        self.failed += 1;
        if self.failures.len() < MAX_FAILURE_LINES {
            self.failures.push(what);
        }
    }
}

/// A source folder's target: our name and mailbox (none yet in a dry run), or why not.
type Planned = Result<(String, Option<MailboxId>), String>;

/// The record of one folder: what the `meta` item holds.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Meta {
    source: String,
    folder: String,
    target: String,
    uid_validity: u32,
}

struct Ctx<'a> {
    store: &'a dyn Store,
    account: AccountId,
    opts: &'a MigrateOptions,
    summary: &'a Mutex<MigrateSummary>,
    progress: &'a (dyn Fn(&MigrateSummary) + Sync),
    started: Instant,
    /// Custom keywords in the case the source wrote them.
    cases: &'a Mutex<BTreeMap<String, String>>,
}

impl Ctx<'_> {
    fn update(&self, f: impl FnOnce(&mut MigrateSummary)) {
        let snapshot = {
            let mut s = self.summary.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut s);
            s.elapsed = self.started.elapsed();
            s.clone()
        };
        (self.progress)(&snapshot);
    }
}

/// Copies every folder of the source into the account. Errors only when nothing can go on
/// (the source refuses the login, the store is down); a folder that fails is reported in
/// the summary's failures and the others go on. Run it again to resume or to sync.
pub async fn migrate(
    store: &dyn Store,
    account: AccountId,
    opts: &MigrateOptions,
    progress: &(dyn Fn(&MigrateSummary) + Sync),
) -> anyhow::Result<MigrateSummary> {
    let started = Instant::now();
    let max_literal = opts.max_message_size.saturating_add(64 * 1024);
    let mut client = Client::connect(&opts.source, opts.tls.clone(), max_literal).await?;
    client.login(&opts.source.user, &opts.password).await?;
    let folders: Vec<Folder> = client
        .list()
        .await?
        .into_iter()
        .filter(|f| !f.noselect)
        .collect();
    client.logout().await;

    // Target folders first, one after the other (parents before children).
    let mut mailboxes = store.mailbox_list(account).await?;
    let mut created = Vec::new();
    let mut plan: Vec<(Folder, Planned)> = Vec::new();
    for f in folders {
        let name = target_name(&f, &mailboxes);
        let resolved = if opts.dry_run {
            let id = crate::import::existing(&mailboxes, &name);
            if id.is_none() {
                created.push(name.clone());
            }
            Ok((name, id))
        } else {
            match ensure_mailbox(store, account, &mut mailboxes, &name, &mut created).await {
                Ok(id) => {
                    set_role(store, account, &mut mailboxes, id, f.special_use.as_deref()).await;
                    Ok((name, Some(id)))
                }
                Err(why) => Err(why),
            }
        };
        plan.push((f, resolved));
    }
    let summary = Mutex::new(MigrateSummary {
        folders: plan.len(),
        folders_created: created,
        ..MigrateSummary::default()
    });
    let cases = Mutex::new(BTreeMap::new());
    let ctx = Ctx {
        store,
        account,
        opts,
        summary: &summary,
        progress,
        started,
        cases: &cases,
    };
    let jobs = opts.jobs.clamp(1, MAX_JOBS);
    let mut runs = futures::stream::iter(plan.iter().map(|(f, r)| {
        let ctx = &ctx;
        async move {
            let outcome = match r {
                Ok((name, id)) => copy_folder(ctx, f, name, *id).await,
                Err(why) => Err(anyhow!("{why}")),
            };
            (f, outcome)
        }
    }))
    .buffer_unordered(jobs);
    let mut store_down = None;
    while let Some((f, outcome)) = runs.next().await {
        match outcome {
            Ok(()) => ctx.update(|s| s.folders_done += 1),
            Err(e) => {
                if e.downcast_ref::<StoreError>()
                    .is_some_and(|e| matches!(e, StoreError::Unavailable(_)))
                {
                    store_down = Some(e.to_string());
                }
                ctx.update(|s| s.fail(format!("folder {}: {e:#}", f.raw)));
            }
        }
    }
    drop(runs);
    let written: Vec<String> = cases
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_values()
        .collect();
    if !written.is_empty() && !opts.dry_run {
        let written: Vec<&str> = written.iter().map(String::as_str).collect();
        let mut case = KeywordCase::load(store, account).await?;
        case.remember(store, account, &written).await?;
    }
    let mut s = summary.into_inner().unwrap_or_else(|e| e.into_inner());
    s.elapsed = started.elapsed();
    if let Some(why) = store_down {
        return Err(anyhow!(
            "{why}; {} messages were copied before it stopped: run the same command again to go on",
            s.copied
        ));
    }
    Ok(s)
}

/// Our name for a source folder: INBOX stays INBOX; a special-use folder goes to our
/// folder of that role (RFC 6154: Dovecot's `Sent Messages` → our `Sent`); else its
/// levels joined by `/`.
fn target_name(f: &Folder, mailboxes: &[Mailbox]) -> String {
    if f.levels.len() == 1 && f.levels[0].eq_ignore_ascii_case("INBOX") {
        return "INBOX".into();
    }
    if let Some(role) = f.special_use.as_deref().and_then(role_of)
        && let Some(m) = mailboxes.iter().find(|m| m.role == Some(role))
    {
        return m.name.clone();
    }
    f.levels.join("/")
}

fn role_of(special_use: &str) -> Option<Role> {
    Some(match special_use {
        "sent" => Role::Sent,
        "trash" => Role::Trash,
        "drafts" => Role::Drafts,
        "junk" => Role::Junk,
        "archive" => Role::Archive,
        _ => return None,
    })
}

/// Gives a newly made folder the source's special use when no folder has that role yet.
async fn set_role(
    store: &dyn Store,
    account: AccountId,
    mailboxes: &mut [Mailbox],
    id: MailboxId,
    special_use: Option<&str>,
) {
    let Some(role) = special_use.and_then(role_of) else {
        return;
    };
    if mailboxes.iter().any(|m| m.role == Some(role)) {
        return;
    }
    if store
        .mailbox_set_role(account, id, Some(role))
        .await
        .is_ok()
        && let Some(m) = mailboxes.iter_mut().find(|m| m.id == id)
    {
        m.role = Some(role);
    }
}

/// The record collection of one source folder.
fn collection(source: &Source, folder: &str) -> String {
    let digest = sha2::Sha256::digest(format!("{}\n{folder}", source.display()).as_bytes());
    format!("{COLLECTION_PREFIX}{}", &hex::encode(digest)[..24])
}

fn chunk_id(uid: u32) -> String {
    format!("uids-{:08}", uid / UIDS_PER_ITEM)
}

/// What was copied from one folder before: its UIDVALIDITY and UID → email id.
async fn load_record(
    store: &dyn Store,
    account: AccountId,
    coll: &str,
) -> Result<(Option<Meta>, BTreeMap<u32, EmailId>, Vec<String>), StoreError> {
    let mut meta = None;
    let mut map = BTreeMap::new();
    let mut chunk_ids = Vec::new();
    for item in store.collection_get(account, coll, None).await? {
        if item.id == "meta" {
            meta = serde_json::from_str(&item.value).ok();
        } else {
            chunk_ids.push(item.id.clone());
            let m: BTreeMap<u32, i64> = serde_json::from_str(&item.value).unwrap_or_default();
            map.extend(m.into_iter().map(|(u, e)| (u, EmailId(e))));
        }
    }
    Ok((meta, map, chunk_ids))
}

/// Writes the chunks holding `uids` (from `map`), and `meta` when given.
async fn save_record(
    store: &dyn Store,
    account: AccountId,
    coll: &str,
    map: &BTreeMap<u32, EmailId>,
    uids: &[u32],
    meta: Option<&Meta>,
) -> Result<(), StoreError> {
    let chunks: BTreeSet<u32> = uids.iter().map(|u| u / UIDS_PER_ITEM).collect();
    let mut writes = Vec::new();
    if let Some(meta) = meta {
        let value = serde_json::to_string(meta).map_err(|e| StoreError::Invalid(e.to_string()))?;
        writes.push(ItemWrite::put(coll, "meta", Expect::Any, value));
    }
    for c in chunks {
        let lo = c * UIDS_PER_ITEM;
        let hi = lo + (UIDS_PER_ITEM - 1);
        let part: BTreeMap<u32, i64> = map.range(lo..=hi).map(|(u, e)| (*u, e.0)).collect();
        let value = serde_json::to_string(&part).map_err(|e| StoreError::Invalid(e.to_string()))?;
        writes.push(ItemWrite::put(coll, &chunk_id(lo), Expect::Any, value));
    }
    if writes.is_empty() {
        return Ok(());
    }
    store.collection_write(account, writes).await.map(|_| ())
}

/// The source's flags as keywords (`\Seen` → `$seen`, …; `\Recent` is the session's, not
/// the message's, RFC 3501 §2.3.2, and is dropped).
pub fn keywords_of(flags_in: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for f in flags_in {
        let k = match f.to_ascii_lowercase().as_str() {
            "\\seen" => "$seen".to_string(),
            "\\answered" => "$answered".to_string(),
            "\\flagged" => "$flagged".to_string(),
            "\\draft" => "$draft".to_string(),
            "\\deleted" => "$deleted".to_string(),
            s if s.starts_with('\\') => continue,
            _ => match flags::keyword(f) {
                Some(k) => k,
                None => continue,
            },
        };
        if !out.iter().any(|o| o.eq_ignore_ascii_case(&k)) {
            out.push(k);
        }
    }
    out
}

fn same_keywords(a: &[String], b: &[String]) -> bool {
    let a: BTreeSet<String> = a.iter().map(|k| k.to_ascii_lowercase()).collect();
    let b: BTreeSet<String> = b.iter().map(|k| k.to_ascii_lowercase()).collect();
    a == b
}

async fn copy_folder(
    ctx: &Ctx<'_>,
    folder: &Folder,
    target_name: &str,
    target: Option<MailboxId>,
) -> anyhow::Result<()> {
    let opts = ctx.opts;
    let max_literal = opts.max_message_size.saturating_add(64 * 1024);
    let mut client = Client::connect(&opts.source, opts.tls.clone(), max_literal).await?;
    client.login(&opts.source.user, &opts.password).await?;
    let Examined {
        uid_validity,
        exists,
    } = client.examine(&folder.raw).await?;
    let infos: Vec<MessageInfo> = if exists > 0 {
        client.message_infos().await?
    } else {
        Vec::new()
    };
    ctx.update(|s| s.messages_at_source += infos.len() as u64);

    let coll = collection(&opts.source, &folder.raw);
    let (meta, mut map, chunk_ids) = match target {
        Some(_) => load_record(ctx.store, ctx.account, &coll).await?,
        None => (None, BTreeMap::new(), Vec::new()),
    };
    let validity_changed = meta
        .as_ref()
        .is_some_and(|m| m.uid_validity != uid_validity);
    if validity_changed {
        tracing::warn!(folder = %folder.raw, "the source's UIDVALIDITY changed: comparing the folder anew by content");
        map.clear();
    }
    // The folder here: keywords by email, and copies no record claims, by content.
    let here = match target {
        Some(t) => ctx.store.mailbox_messages(ctx.account, t).await?,
        None => Vec::new(),
    };
    let claimed: BTreeSet<EmailId> = map.values().copied().collect();
    let keywords_here: HashMap<EmailId, Vec<String>> =
        here.iter().map(|m| (m.email, m.keywords.clone())).collect();
    let mut unclaimed: HashMap<BlobHash, Vec<EmailId>> = HashMap::new();
    for m in &here {
        if !claimed.contains(&m.email) {
            unclaimed.entry(m.blob.clone()).or_default().push(m.email);
        }
    }

    // Flags of what an earlier run copied.
    let mut updates = Vec::new();
    let mut already = 0u64;
    for info in &infos {
        let Some(email) = map.get(&info.uid) else {
            continue;
        };
        already += 1;
        if let Some(ours) = keywords_here.get(email) {
            let want = keywords_of(&info.flags);
            if !same_keywords(&want, ours) {
                remember_case(ctx, &want);
                updates.push(KeywordUpdate {
                    email: *email,
                    op: KeywordOp::Replace,
                    keywords: want,
                    unchanged_since: None,
                });
            }
        }
    }
    let flag_updates = updates.len() as u64;
    if !opts.dry_run {
        for part in updates.chunks(FLAG_BATCH) {
            ctx.store
                .email_set_keywords(ctx.account, part.to_vec())
                .await?;
        }
    }
    ctx.update(|s| {
        s.already += already;
        s.flags_updated += flag_updates;
    });

    let mut todo: Vec<&MessageInfo> = Vec::new();
    for info in infos.iter().filter(|i| !map.contains_key(&i.uid)) {
        if info.size as usize > opts.max_message_size {
            ctx.update(|s| {
                s.fail(format!(
                    "{} UID {}: {} bytes, over the size limit of {} bytes",
                    folder.raw, info.uid, info.size, opts.max_message_size
                ))
            });
        } else {
            todo.push(info);
        }
    }
    let Some(target) = target.filter(|_| !opts.dry_run) else {
        ctx.update(|s| s.copied += todo.len() as u64);
        client.logout().await;
        return Ok(());
    };
    let mut new_meta = Some(Meta {
        source: opts.source.display(),
        folder: folder.raw.clone(),
        target: target_name.to_string(),
        uid_validity,
    })
    .filter(|_| meta.is_none() || validity_changed);
    if validity_changed {
        // Old UIDs mean nothing now.
        for ids in chunk_ids.chunks(1000) {
            let writes = ids
                .iter()
                .map(|id| ItemWrite::delete(&coll, id, Expect::Any))
                .collect();
            ctx.store.collection_write(ctx.account, writes).await?;
        }
    }
    if new_meta.is_some() && todo.is_empty() {
        save_record(ctx.store, ctx.account, &coll, &map, &[], new_meta.as_ref()).await?;
        new_meta = None;
    }

    let by_uid: HashMap<u32, &MessageInfo> = todo.iter().map(|i| (i.uid, *i)).collect();
    let mut i = 0;
    while i < todo.len() {
        let mut j = i;
        let mut bytes = 0u64;
        while j < todo.len()
            && j - i < BATCH
            && (j == i || bytes + todo[j].size as u64 <= BATCH_BYTES)
        {
            bytes += todo[j].size as u64;
            j += 1;
        }
        let uids: Vec<u32> = todo[i..j].iter().map(|m| m.uid).collect();
        i = j;
        let bodies = client.bodies(&uids).await.map_err(|e| {
            anyhow!("{e}; run the same command again to go on from where it stopped")
        })?;
        let mut news: Vec<NewEmail> = Vec::new();
        let mut news_uids: Vec<u32> = Vec::new();
        let mut recorded: Vec<u32> = Vec::new();
        let mut found = 0u64;
        let mut size = 0u64;
        for (uid, raw) in bodies {
            let Some(info) = by_uid.get(&uid) else {
                continue;
            };
            if map.contains_key(&uid) || news_uids.contains(&uid) {
                continue;
            }
            if raw.len() > opts.max_message_size {
                ctx.update(|s| {
                    s.fail(format!(
                        "{} UID {uid}: {} bytes, over the size limit of {} bytes",
                        folder.raw,
                        raw.len(),
                        opts.max_message_size
                    ))
                });
                continue;
            }
            let hash = BlobHash::of(&raw);
            if let Some(email) = unclaimed.get_mut(&hash).and_then(Vec::pop) {
                // Copied by a run that stopped before recording it.
                map.insert(uid, email);
                recorded.push(uid);
                found += 1;
                continue;
            }
            let keywords = keywords_of(&info.flags);
            remember_case(ctx, &keywords);
            size += raw.len() as u64;
            let received_at = info.internal_date.unwrap_or_else(bulwark_store::now_unix);
            news.push(bulwark_core::new_email(
                vec![target],
                Arc::new(raw),
                keywords,
                received_at,
            ));
            news_uids.push(uid);
        }
        let mut copied = 0u64;
        if !news.is_empty() {
            match ctx.store.email_append(ctx.account, news.clone()).await {
                Ok(appended) => {
                    for (uid, a) in news_uids.iter().zip(appended) {
                        map.insert(*uid, a.email);
                        recorded.push(*uid);
                        copied += 1;
                    }
                }
                Err(e @ StoreError::Unavailable(_)) => return Err(e.into()),
                Err(_) => {
                    // One bad message fails alone.
                    for (uid, new) in news_uids.iter().zip(news) {
                        match ctx.store.email_append(ctx.account, vec![new]).await {
                            Ok(a) => {
                                if let Some(a) = a.into_iter().next() {
                                    map.insert(*uid, a.email);
                                    recorded.push(*uid);
                                    copied += 1;
                                }
                            }
                            Err(e @ StoreError::Unavailable(_)) => return Err(e.into()),
                            Err(e) => {
                                ctx.update(|s| s.fail(format!("{} UID {uid}: {e}", folder.raw)))
                            }
                        }
                    }
                }
            }
        }
        save_record(
            ctx.store,
            ctx.account,
            &coll,
            &map,
            &recorded,
            new_meta.take().as_ref(),
        )
        .await?;
        ctx.update(|s| {
            s.copied += copied;
            s.already += found;
            s.bytes += size;
        });
    }
    client.logout().await;
    Ok(())
}

fn remember_case(ctx: &Ctx<'_>, keywords: &[String]) {
    let mut cases = ctx.cases.lock().unwrap_or_else(|e| e.into_inner());
    for k in keywords {
        let lower = k.to_ascii_lowercase();
        if keyword_case::is_custom(&lower) {
            cases.entry(lower).or_insert_with(|| k.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_keywords() {
        let f = |v: &[&str]| keywords_of(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            f(&[
                "\\Seen",
                "\\Recent",
                "\\Flagged",
                "$Forwarded",
                "NonJunk",
                "\\Answered"
            ]),
            vec!["$seen", "$flagged", "$Forwarded", "NonJunk", "$answered"]
        );
        assert_eq!(
            f(&["\\Deleted", "\\Draft", "\\Unknown"]),
            vec!["$deleted", "$draft"]
        );
        assert!(same_keywords(
            &["$Forwarded".into(), "$seen".into()],
            &["$seen".into(), "$forwarded".into()]
        ));
    }

    #[test]
    fn record_keys_differ_by_source_and_folder() {
        let a = Source::parse("imaps://alice@one.example").unwrap();
        let b = Source::parse("imaps://alice@two.example").unwrap();
        assert_ne!(collection(&a, "INBOX"), collection(&b, "INBOX"));
        assert_ne!(collection(&a, "INBOX"), collection(&a, "Sent"));
        assert!(collection(&a, "INBOX").len() <= bulwark_store::collections::MAX_NAME_LEN);
        assert_eq!(chunk_id(4095), chunk_id(0));
        assert_ne!(chunk_id(4096), chunk_id(0));
    }
}
