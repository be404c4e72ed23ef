//! Rows of the hottest tables a transaction writes, kept in columns until a statement that
//! may read them (or COMMIT) and then sent as one multi-row statement per table
//! (`unnest` of arrays). A batch of 64 deliveries writes ~8 statements instead of ~900:
//! PostgreSQL's cost per statement (parse-free, but bind, execute, locks, WAL records) is
//! most of a delivery's cost on its side.
//!
//! Order: [`Buffered::into_statements`] sends threads, blobs, emails, envelopes, memberships,
//! change-log rows, thread references, then the counter updates; the tables have no foreign keys, and no
//! statement of the ordered pipeline (`Tx::exec_later`) reads or writes these rows, so only
//! the statements that read them need the flush ([`crate::pool::Tx`] flushes before every
//! awaited statement except the counter and sequence reads, which read none).

use crate::pool::LaterParam;
use std::collections::{BTreeMap, HashSet};

/// The rows a transaction has written but not yet sent.
#[derive(Default)]
pub(crate) struct Buffered {
    threads: (Vec<i64>, Vec<i64>),
    blob_hashes: Vec<String>,
    blob_data: Vec<Vec<u8>>,
    blobs_seen: HashSet<String>,
    emails: Emails,
    envelopes: (Vec<i64>, Vec<Vec<u8>>),
    /// mailbox, uid, email, modseq, saved_at (RFC 8514 SAVEDATE).
    memberships: [Vec<i64>; 5],
    changes: [Vec<i64>; 5],
    /// (account, Message-ID) → thread; a later write of the same reference replaces it.
    thread_refs: BTreeMap<(i64, String), i64>,
    /// account → its modseq counter; mailbox → UIDNEXT; mailbox → HIGHESTMODSEQ (the last
    /// value wins; the rows are locked by this transaction).
    account_modseq: BTreeMap<i64, i64>,
    uid_next: BTreeMap<i64, i64>,
    highest_modseq: BTreeMap<i64, i64>,
}

#[derive(Default)]
struct Emails {
    id: Vec<i64>,
    account: Vec<i64>,
    thread: Vec<i64>,
    blob: Vec<String>,
    size: Vec<i64>,
    received_at: Vec<i64>,
    keywords: Vec<String>,
    seen: Vec<bool>,
    modseq: Vec<i64>,
    message_id: Vec<Option<String>>,
    summary: Vec<String>,
}

/// One email row (the `emails` table's columns; `kw_modseq` starts equal to `modseq`).
pub(crate) struct EmailCols {
    pub id: i64,
    pub account: i64,
    pub thread: i64,
    pub blob: String,
    pub size: i64,
    pub received_at: i64,
    pub keywords: String,
    pub seen: bool,
    pub modseq: i64,
    pub message_id: Option<String>,
    pub summary: String,
}

impl Buffered {
    pub(crate) fn is_empty(&self) -> bool {
        self.threads.0.is_empty()
            && self.blob_hashes.is_empty()
            && self.emails.id.is_empty()
            && self.envelopes.0.is_empty()
            && self.memberships[0].is_empty()
            && self.changes[0].is_empty()
            && self.thread_refs.is_empty()
            && self.account_modseq.is_empty()
            && self.uid_next.is_empty()
            && self.highest_modseq.is_empty()
    }

    pub(crate) fn thread(&mut self, id: i64, account: i64) {
        self.threads.0.push(id);
        self.threads.1.push(account);
    }

    /// A content-addressed blob (written once; a second copy in the batch is dropped).
    pub(crate) fn blob(&mut self, hash: &str, data: &[u8]) {
        if self.blobs_seen.insert(hash.to_owned()) {
            self.blob_hashes.push(hash.to_owned());
            self.blob_data.push(data.to_vec());
        }
    }

    pub(crate) fn email(&mut self, row: EmailCols) {
        let e = &mut self.emails;
        e.id.push(row.id);
        e.account.push(row.account);
        e.thread.push(row.thread);
        e.blob.push(row.blob);
        e.size.push(row.size);
        e.received_at.push(row.received_at);
        e.keywords.push(row.keywords);
        e.seen.push(row.seen);
        e.modseq.push(row.modseq);
        e.message_id.push(row.message_id);
        e.summary.push(row.summary);
    }

    pub(crate) fn envelope(&mut self, email: i64, data: Vec<u8>) {
        self.envelopes.0.push(email);
        self.envelopes.1.push(data);
    }

    pub(crate) fn membership(
        &mut self,
        mailbox: i64,
        uid: i64,
        email: i64,
        modseq: i64,
        saved_at: i64,
    ) {
        for (column, value) in self
            .memberships
            .iter_mut()
            .zip([mailbox, uid, email, modseq, saved_at])
        {
            column.push(value);
        }
    }

    pub(crate) fn change(&mut self, account: i64, modseq: i64, kind: i64, object: i64, op: i64) {
        for (column, value) in self
            .changes
            .iter_mut()
            .zip([account, modseq, kind, object, op])
        {
            column.push(value);
        }
    }

    pub(crate) fn thread_refs(&mut self, account: i64, ids: &[String], thread: i64) {
        for id in ids {
            self.thread_refs.insert((account, id.clone()), thread);
        }
    }

    pub(crate) fn account_modseq(&mut self, account: i64, modseq: i64) {
        self.account_modseq.insert(account, modseq);
    }

    pub(crate) fn uid_next(&mut self, mailbox: i64, next: i64) {
        self.uid_next.insert(mailbox, next);
    }

    pub(crate) fn highest_modseq(&mut self, mailbox: i64, modseq: i64) {
        let entry = self.highest_modseq.entry(mailbox).or_insert(modseq);
        *entry = (*entry).max(modseq);
    }

    /// The statements that write everything kept, in the order of the module comment.
    pub(crate) fn into_statements(self) -> Vec<(&'static str, Vec<LaterParam>)> {
        let mut out: Vec<(&'static str, Vec<LaterParam>)> = Vec::new();
        if !self.threads.0.is_empty() {
            out.push((
                "INSERT INTO threads (id, account)
                 SELECT * FROM unnest($1::bigint[], $2::bigint[])",
                vec![Box::new(self.threads.0), Box::new(self.threads.1)],
            ));
        }
        if !self.blob_hashes.is_empty() {
            out.push((
                "WITH l AS (SELECT pg_advisory_xact_lock_shared($3::bigint))
                 INSERT INTO blobs (hash, data)
                 SELECT u.hash, u.data FROM l, unnest($1::text[], $2::bytea[]) AS u(hash, data)
                 ON CONFLICT (hash) DO NOTHING",
                vec![
                    Box::new(self.blob_hashes),
                    Box::new(self.blob_data),
                    Box::new(crate::schema::BLOB_LOCK),
                ],
            ));
        }
        let e = self.emails;
        if !e.id.is_empty() {
            out.push((
                "INSERT INTO emails (id, account, thread, blob, size, received_at, keywords, seen,
                                     modseq, kw_modseq, message_id, summary)
                 SELECT id, account, thread, blob, size, received_at, keywords, seen,
                        modseq, modseq, message_id, summary
                 FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::bigint[],
                             $6::bigint[], $7::text[], $8::bool[], $9::bigint[], $10::text[],
                             $11::text[])
                      AS u(id, account, thread, blob, size, received_at, keywords, seen, modseq,
                           message_id, summary)",
                vec![
                    Box::new(e.id),
                    Box::new(e.account),
                    Box::new(e.thread),
                    Box::new(e.blob),
                    Box::new(e.size),
                    Box::new(e.received_at),
                    Box::new(e.keywords),
                    Box::new(e.seen),
                    Box::new(e.modseq),
                    Box::new(e.message_id),
                    Box::new(e.summary),
                ],
            ));
        }
        if !self.envelopes.0.is_empty() {
            out.push((
                "INSERT INTO envelopes (email, data)
                 SELECT * FROM unnest($1::bigint[], $2::bytea[])",
                vec![Box::new(self.envelopes.0), Box::new(self.envelopes.1)],
            ));
        }
        if !self.memberships[0].is_empty() {
            let [mailbox, uid, email, modseq, saved_at] = self.memberships;
            out.push((
                "INSERT INTO memberships (mailbox, uid, email, modseq, saved_at)
                 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[],
                                      $5::bigint[])",
                vec![
                    Box::new(mailbox),
                    Box::new(uid),
                    Box::new(email),
                    Box::new(modseq),
                    Box::new(saved_at),
                ],
            ));
        }
        if !self.changes[0].is_empty() {
            let [account, modseq, kind, object, op] = self.changes;
            // In the order written (the log's sequence numbers follow it).
            out.push((
                "INSERT INTO changes (account, modseq, kind, object, op)
                 SELECT account, modseq, kind, object, op
                 FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[])
                      WITH ORDINALITY AS u(account, modseq, kind, object, op, n)
                 ORDER BY n",
                vec![
                    Box::new(account),
                    Box::new(modseq),
                    Box::new(kind),
                    Box::new(object),
                    Box::new(op),
                ],
            ));
        }
        if !self.thread_refs.is_empty() {
            let mut accounts = Vec::with_capacity(self.thread_refs.len());
            let mut ids = Vec::with_capacity(self.thread_refs.len());
            let mut threads = Vec::with_capacity(self.thread_refs.len());
            for ((account, id), thread) in self.thread_refs {
                accounts.push(account);
                ids.push(id);
                threads.push(thread);
            }
            out.push((
                "INSERT INTO thread_refs (account, message_id, thread)
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[])
                 ON CONFLICT (account, message_id) DO UPDATE SET thread = EXCLUDED.thread",
                vec![Box::new(accounts), Box::new(ids), Box::new(threads)],
            ));
        }
        // Each counter row once, found by its key (`= ANY` lets the planner use the index
        // whatever the table's size).
        let (ids, values) = split(self.account_modseq);
        if !ids.is_empty() {
            out.push((
                "UPDATE accounts a SET modseq = u.modseq
                 FROM unnest($1::bigint[], $2::bigint[]) AS u(id, modseq)
                 WHERE a.id = ANY($1::bigint[]) AND a.id = u.id",
                vec![Box::new(ids), Box::new(values)],
            ));
        }
        let mut mailboxes: BTreeMap<i64, (Option<i64>, Option<i64>)> = BTreeMap::new();
        for (id, next) in self.uid_next {
            mailboxes.entry(id).or_default().0 = Some(next);
        }
        for (id, modseq) in self.highest_modseq {
            mailboxes.entry(id).or_default().1 = Some(modseq);
        }
        if !mailboxes.is_empty() {
            let mut ids = Vec::with_capacity(mailboxes.len());
            let mut nexts = Vec::with_capacity(mailboxes.len());
            let mut modseqs = Vec::with_capacity(mailboxes.len());
            for (id, (next, modseq)) in mailboxes {
                ids.push(id);
                nexts.push(next);
                modseqs.push(modseq);
            }
            // GREATEST ignores NULL: a mailbox only touched keeps its UIDNEXT, one only
            // given a UID keeps its HIGHESTMODSEQ unless raised.
            out.push((
                "UPDATE mailboxes b
                 SET uid_next = COALESCE(u.next, b.uid_next),
                     highest_modseq = GREATEST(b.highest_modseq, u.modseq)
                 FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS u(id, next, modseq)
                 WHERE b.id = ANY($1::bigint[]) AND b.id = u.id",
                vec![Box::new(ids), Box::new(nexts), Box::new(modseqs)],
            ));
        }
        out
    }
}

fn split(map: BTreeMap<i64, i64>) -> (Vec<i64>, Vec<i64>) {
    map.into_iter().unzip()
}
