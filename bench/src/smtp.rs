//! SMTP/LMTP ingest: N sessions, each looping MAIL/RCPT/DATA over one connection.
//! Latency recorded is end-of-data (".") → final 250, i.e. what durability costs.

use crate::maildir;
use crate::message;
use crate::stats::{Latencies, ms, round3};
use crate::wire::Conn;
use anyhow::{Result, bail};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct SmtpArgs {
    /// Server address ip:port; several, comma-separated (the nodes of one cluster), take
    /// the sessions in turn.
    #[arg(long)]
    pub addr: String,
    /// Parallel sessions (connections).
    #[arg(long, default_value_t = 10)]
    pub sessions: usize,
    /// Message size in bytes.
    #[arg(long, default_value_t = 5000)]
    pub size: usize,
    /// Total messages over all sessions.
    #[arg(long, default_value_t = 1000)]
    pub messages: u64,
    /// Stop starting new messages after this many seconds (0 = no cap).
    #[arg(long, default_value_t = 0.0)]
    pub duration: f64,
    /// Recipient; `{}` is replaced by (message number % --rcpt-count).
    #[arg(long)]
    pub rcpt: String,
    #[arg(long, default_value_t = 1)]
    pub rcpt_count: u64,
    /// Speak LMTP (LHLO) instead of SMTP.
    #[arg(long)]
    pub lmtp: bool,
    /// Maildir folders (containing new/ and cur/) that receive the messages: after sending,
    /// wait until they hold every accepted message and report the delivered rate.
    #[arg(long)]
    pub wait_maildir: Vec<String>,
    /// Give up waiting for maildir delivery after this many seconds.
    #[arg(long, default_value_t = 120.0)]
    pub wait_timeout: f64,
}

struct Shared {
    args: SmtpArgs,
    next: AtomicU64,
    deadline: Option<Instant>,
}

struct SessionResult {
    final_latency: Latencies,
    sent: u64,
    errors: u64,
}

pub async fn run(args: SmtpArgs) -> Result<serde_json::Value> {
    let baseline = maildir::count(&args.wait_maildir);
    let shared = Arc::new(Shared {
        deadline: (args.duration > 0.0)
            .then(|| Instant::now() + Duration::from_secs_f64(args.duration)),
        next: AtomicU64::new(0),
        args: args.clone(),
    });
    let start = Instant::now();
    let mut tasks = Vec::new();
    let addrs: Vec<String> = args.addr.split(',').map(str::to_owned).collect();
    for i in 0..args.sessions {
        let shared = shared.clone();
        let addr = addrs[i % addrs.len()].clone();
        tasks.push(tokio::spawn(async move { session(shared, addr).await }));
    }
    let mut lat = Latencies::default();
    let (mut sent, mut errors) = (0u64, 0u64);
    for t in tasks {
        match t.await? {
            Ok(r) => {
                lat.merge(r.final_latency);
                sent += r.sent;
                errors += r.errors;
            }
            Err(e) => {
                eprintln!("smtp session failed: {e:#}");
                errors += 1;
            }
        }
    }
    let acked_elapsed = start.elapsed();
    let s = lat.summary();
    let acked_rate = sent as f64 / acked_elapsed.as_secs_f64();
    let mut out = json!({
        "nodes": addrs.len(), "sessions": args.sessions, "size": args.size, "messages": sent, "errors": errors,
        "elapsed_ms": ms(acked_elapsed), "acked_per_s": round3(acked_rate),
        "p50_ms": s.p50_ms, "p99_ms": s.p99_ms, "max_ms": s.max_ms,
    });
    if !args.wait_maildir.is_empty() {
        let want = baseline + sent;
        let deadline = Instant::now() + Duration::from_secs_f64(args.wait_timeout);
        let mut have = maildir::count(&args.wait_maildir);
        while have < want && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            have = maildir::count(&args.wait_maildir);
        }
        let delivered_elapsed = start.elapsed();
        let delivered = have.saturating_sub(baseline);
        out["delivered"] = json!(delivered);
        out["delivered_elapsed_ms"] = json!(ms(delivered_elapsed));
        out["delivered_per_s"] = json!(round3(delivered as f64 / delivered_elapsed.as_secs_f64()));
        if delivered < sent {
            eprintln!("warning: only {delivered} of {sent} messages reached the maildir");
        }
    } else {
        // For a server that acknowledges only after a durable write, 250 = delivered.
        out["delivered_per_s"] = json!(round3(acked_rate));
    }
    Ok(out)
}

async fn read_reply(conn: &mut Conn) -> Result<(u16, String)> {
    loop {
        let line = conn.read_line().await?;
        if line.len() < 3 {
            bail!("short SMTP reply: {:?}", String::from_utf8_lossy(&line));
        }
        let code: u16 = std::str::from_utf8(&line[..3])?.parse()?;
        if line.get(3) == Some(&b'-') {
            continue;
        }
        return Ok((code, String::from_utf8_lossy(&line).into_owned()));
    }
}

async fn expect(conn: &mut Conn, class: u16, what: &str) -> Result<()> {
    let (code, text) = read_reply(conn).await?;
    if code / 100 != class {
        bail!("{what}: unexpected reply {text}");
    }
    Ok(())
}

async fn session(shared: Arc<Shared>, addr: String) -> Result<SessionResult> {
    let a = &shared.args;
    let mut conn = Conn::connect(&addr).await?;
    expect(&mut conn, 2, "greeting").await?;
    let hello = if a.lmtp { "LHLO" } else { "EHLO" };
    conn.send(format!("{hello} bench.client.test\r\n").as_bytes())
        .await?;
    expect(&mut conn, 2, "EHLO").await?;
    let mut res = SessionResult {
        final_latency: Latencies::default(),
        sent: 0,
        errors: 0,
    };
    loop {
        if shared.deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let n = shared.next.fetch_add(1, Ordering::Relaxed);
        if n >= a.messages {
            break;
        }
        let rcpt = a.rcpt.replace("{}", &(n % a.rcpt_count.max(1)).to_string());
        let mut body = message::build(n, a.size, &rcpt);
        body.extend_from_slice(b".\r\n");
        conn.send(b"MAIL FROM:<bench@client.test>\r\n").await?;
        expect(&mut conn, 2, "MAIL").await?;
        conn.send(format!("RCPT TO:<{rcpt}>\r\n").as_bytes())
            .await?;
        expect(&mut conn, 2, "RCPT").await?;
        conn.send(b"DATA\r\n").await?;
        expect(&mut conn, 3, "DATA").await?;
        let t = Instant::now();
        conn.send(&body).await?;
        let (code, text) = read_reply(&mut conn).await?;
        if code / 100 == 2 {
            res.final_latency.record(t.elapsed());
            res.sent += 1;
        } else {
            res.errors += 1;
            if res.errors <= 3 {
                eprintln!("message rejected: {text}");
            }
        }
    }
    conn.send(b"QUIT\r\n").await?;
    let _ = read_reply(&mut conn).await;
    Ok(res)
}
