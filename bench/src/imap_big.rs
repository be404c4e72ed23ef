//! The big-mailbox workload: populate one mailbox with many messages (pipelined APPEND over
//! several connections), then time SELECT, `FETCH 1:* ENVELOPE` and SEARCH by subject,
//! sender and body text on a fresh connection.

use crate::imap::Imap;
use crate::message;
use crate::stats::{ms, round3};
use anyhow::{Result, bail};
use serde_json::json;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct BigArgs {
    #[arg(long)]
    pub addr: String,
    #[arg(long)]
    pub user: String,
    #[arg(long)]
    pub pass: String,
    /// Messages the mailbox should hold.
    #[arg(long, default_value_t = 100_000)]
    pub messages: u64,
    /// Message size for population.
    #[arg(long, default_value_t = 2000)]
    pub size: usize,
    /// How to fill the mailbox: `append` (pipelined APPEND) or `none` (already filled, e.g.
    /// a maildir written by `populate-maildir`).
    #[arg(long, default_value = "append")]
    pub populate: String,
    /// Connections used for population.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// APPENDs in flight per connection.
    #[arg(long, default_value_t = 32)]
    pub window: usize,
    /// Timed repetitions of each query after the first.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
}

/// SELECTs timed on the warm connection (the median is reported).
const SELECT_SAMPLES: usize = 5;

pub async fn run(a: BigArgs) -> Result<serde_json::Value> {
    let mut out = json!({"messages": a.messages});
    let probe = Imap::login(&a.addr, &a.user, &a.pass).await?;
    let mut probe = probe;
    let have = probe.cmd("SELECT INBOX").await?.exists().unwrap_or(0);
    probe.logout().await;
    if a.populate == "append" && have < a.messages {
        let start = Instant::now();
        let added = populate(&a, have).await?;
        let el = start.elapsed();
        eprintln!("populated {added} messages in {:.1} s", el.as_secs_f64());
        out["populate_ms"] = json!(ms(el));
        out["populate_per_s"] = json!(round3(added as f64 / el.as_secs_f64()));
    }

    // First open after population (a maildir written behind Dovecot's back was indexed by the
    // probe above, untimed).
    let mut imap = Imap::login(&a.addr, &a.user, &a.pass).await?;
    let t = Instant::now();
    let r = imap.cmd("SELECT INBOX").await?;
    out["first_select_ms"] = json!(ms(t.elapsed()));
    let exists = r.exists().unwrap_or(0);
    out["exists"] = json!(exists);
    if exists < a.messages {
        bail!("mailbox holds {exists} messages, wanted {}", a.messages);
    }
    imap.logout().await;

    // Open time as a client sees it: a fresh connection (a fresh process for Dovecot),
    // server caches warm; the median of several.
    let mut selects = Vec::new();
    for _ in 0..SELECT_SAMPLES {
        let mut fresh = Imap::login(&a.addr, &a.user, &a.pass).await?;
        let t = Instant::now();
        fresh.cmd("SELECT INBOX").await?;
        selects.push(t.elapsed());
        fresh.logout().await;
    }
    out["select_ms"] = json!(ms(median(&mut selects)));
    let mut imap = Imap::login(&a.addr, &a.user, &a.pass).await?;
    imap.cmd("SELECT INBOX").await?;

    let queries = [
        ("fetch_envelope", "FETCH 1:* ENVELOPE".to_string()),
        (
            "search_subject",
            format!("SEARCH SUBJECT {}", message::SUBJECT_MARKER),
        ),
        (
            "search_from",
            format!("SEARCH FROM {}", message::FROM_MARKER),
        ),
        (
            "search_body",
            format!("SEARCH BODY {}", message::BODY_MARKER),
        ),
    ];
    for (name, q) in queries {
        let mut times = Vec::new();
        let mut first = Duration::ZERO;
        let mut hits = 0usize;
        for i in 0..=a.repeat {
            let t = Instant::now();
            let r = if name == "fetch_envelope" {
                imap.cmd_count(&q).await?
            } else {
                imap.cmd(&q).await?
            };
            let el = t.elapsed();
            if !r.ok {
                bail!("{q}: {}", r.text);
            }
            hits = if name == "fetch_envelope" {
                r.untagged_count
            } else {
                r.search_hits()
            };
            if i == 0 {
                first = el;
            } else {
                times.push(el);
            }
        }
        out[format!("{name}_first_ms")] = json!(ms(first));
        if times.is_empty() {
            times.push(first);
        }
        out[format!("{name}_ms")] = json!(ms(median(&mut times)));
        out[format!("{name}_hits")] = json!(hits);
    }
    imap.logout().await;
    Ok(out)
}

fn median(v: &mut [Duration]) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    v[v.len() / 2]
}

async fn populate(a: &BigArgs, have: u64) -> Result<u64> {
    let missing = a.messages - have;
    let per = missing.div_ceil(a.connections as u64);
    let mut tasks = Vec::new();
    for c in 0..a.connections as u64 {
        let lo = have + c * per;
        let hi = (lo + per).min(a.messages);
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            let mut imap = Imap::login(&a.addr, &a.user, &a.pass).await?;
            let size = a.size;
            let n = imap
                .append_pipelined(
                    "INBOX",
                    (lo..hi).map(move |n| message::build(n, size, "big@example.test")),
                    a.window,
                )
                .await?;
            imap.logout().await;
            anyhow::Ok(n)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok(total)
}
