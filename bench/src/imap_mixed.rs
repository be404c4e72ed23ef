//! The mixed IMAP workload: each client loops over the operations a mail client does
//! (select, header list of the newest 50, read one message, flag/unflag, append, delete +
//! expunge, a short IDLE). Every command round trip is one operation.

use crate::imap::Imap;
use crate::message;
use crate::stats::{Latencies, ms, round3};
use anyhow::Result;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct MixedArgs {
    /// IMAP listener ip:port; several, comma-separated (the nodes of one cluster), take
    /// turns.
    #[arg(long)]
    pub addr: String,
    #[arg(long, default_value_t = 10)]
    pub clients: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// User name; `{}` is replaced by (client number % --users).
    #[arg(long)]
    pub user: String,
    #[arg(long, default_value_t = 1)]
    pub users: usize,
    #[arg(long)]
    pub pass: String,
}

const OPS: [&str; 9] = [
    "select",
    "fetch_headers",
    "fetch_body",
    "store_seen",
    "store_unseen",
    "append",
    "store_deleted",
    "expunge",
    "idle",
];

#[derive(Default)]
struct ClientResult {
    per_op: BTreeMap<&'static str, Latencies>,
    failures: u64,
}

pub async fn run(a: MixedArgs) -> Result<serde_json::Value> {
    // Log every client in first so the timed part measures only mail operations.
    let sessions =
        crate::imap::login_many(&a.addr, &a.user, a.users, &a.pass, a.clients, 16).await?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(a.duration);
    let mut tasks = Vec::new();
    for (i, imap) in sessions.into_iter().enumerate() {
        tasks.push(tokio::spawn(client(imap, i as u64, deadline)));
    }
    let mut all = Latencies::default();
    let mut per_op: BTreeMap<&'static str, Latencies> = BTreeMap::new();
    let mut failures = 0;
    for t in tasks {
        match t.await? {
            Ok(r) => {
                failures += r.failures;
                for (op, l) in r.per_op {
                    all.merge(l.clone());
                    per_op.entry(op).or_default().merge(l);
                }
            }
            Err(e) => {
                eprintln!("imap client failed: {e:#}");
                failures += 1;
            }
        }
    }
    let elapsed = start.elapsed();
    let s = all.summary();
    let ops: serde_json::Map<String, serde_json::Value> = per_op
        .iter()
        .map(|(k, v)| {
            let s = v.summary();
            (
                k.to_string(),
                json!({"count": s.count, "p50_ms": s.p50_ms, "p99_ms": s.p99_ms}),
            )
        })
        .collect();
    Ok(json!({
        "clients": a.clients, "ops": s.count, "failures": failures,
        "elapsed_ms": ms(elapsed), "ops_per_s": round3(s.count as f64 / elapsed.as_secs_f64()),
        "p50_ms": s.p50_ms, "p99_ms": s.p99_ms, "max_ms": s.max_ms, "per_op": ops,
    }))
}

async fn client(mut imap: Imap, id: u64, deadline: Instant) -> Result<ClientResult> {
    let mut res = ClientResult::default();
    let mut n = id * 1_000_000;
    while Instant::now() < deadline {
        n += 1;
        one_round(&mut imap, &mut res, n).await?;
    }
    imap.logout().await;
    Ok(res)
}

async fn one_round(imap: &mut Imap, res: &mut ClientResult, n: u64) -> Result<()> {
    macro_rules! timed {
        ($op:expr, $fut:expr) => {{
            let t = Instant::now();
            let r = $fut.await?;
            if r.ok {
                res.per_op.entry($op).or_default().record(t.elapsed());
            } else {
                res.failures += 1;
                if res.failures <= 3 {
                    eprintln!("{} failed: {}", $op, r.text);
                }
            }
            r
        }};
    }
    debug_assert_eq!(OPS.len(), 9);
    let sel = timed!("select", imap.cmd("SELECT INBOX"));
    let exists = sel.exists().unwrap_or(0);
    if exists > 0 {
        // Sequence numbers come from our own SELECT; other clients expunge concurrently, so
        // everything after the header list goes by UID (stable, RFC 9051 §2.3.1.1).
        let first = exists.saturating_sub(49).max(1);
        let list = timed!(
            "fetch_headers",
            imap.cmd(&format!(
                "FETCH {first}:{exists} (UID FLAGS BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)])"
            ))
        );
        let uids = list.fetched_uids();
        if !uids.is_empty() {
            let uid = uids[(n as usize) % uids.len()];
            timed!("fetch_body", imap.cmd(&format!("UID FETCH {uid} BODY[]")));
            timed!(
                "store_seen",
                imap.cmd(&format!("UID STORE {uid} +FLAGS (\\Seen)"))
            );
            timed!(
                "store_unseen",
                imap.cmd(&format!("UID STORE {uid} -FLAGS (\\Seen)"))
            );
        }
    }
    let msg = message::build(n, 2000, "mixed@example.test");
    let app = timed!("append", imap.append("INBOX", "", &msg));
    // Delete what we appended so the mailbox keeps its size (UIDPLUS, RFC 4315).
    if let Some(uid) = app.append_uid() {
        timed!(
            "store_deleted",
            imap.cmd(&format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"))
        );
        if imap.has_capability("UIDPLUS") {
            timed!("expunge", imap.cmd(&format!("UID EXPUNGE {uid}")));
        } else {
            timed!("expunge", imap.cmd("EXPUNGE"));
        }
    }
    let t = Instant::now();
    let tag = imap.idle_start().await?;
    let r = imap.idle_done(&tag).await?;
    if r.ok {
        res.per_op.entry("idle").or_default().record(t.elapsed());
    } else {
        res.failures += 1;
    }
    Ok(())
}
