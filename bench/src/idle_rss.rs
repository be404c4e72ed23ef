//! Memory per idle IMAP connection: open N authenticated sessions in IDLE and compare the
//! server's memory (the whole process tree of --pid: Dovecot forks a process per session)
//! before and after.

use crate::stats::round3;
use anyhow::{Result, bail};
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct IdleArgs {
    #[arg(long)]
    pub addr: String,
    #[arg(long, default_value_t = 1000)]
    pub clients: usize,
    /// User; `{}` is replaced by (client number % --users).
    #[arg(long)]
    pub user: String,
    #[arg(long, default_value_t = 1)]
    pub users: usize,
    #[arg(long)]
    pub pass: String,
    /// Server process id (its descendants are counted too).
    #[arg(long)]
    pub pid: u32,
    /// Logins in flight at once (password hashing is memory-hard: a burst of parallel
    /// logins inflates the allocator's arenas, which is not per-connection cost).
    #[arg(long, default_value_t = 4)]
    pub login_parallel: usize,
}

#[derive(Default, Debug, Clone, Copy)]
pub struct Mem {
    pub rss_kb: u64,
    pub pss_kb: u64,
    pub processes: u64,
}

fn field_kb(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Sum of VmRSS and Pss over `root` and all its descendants.
pub fn tree_memory(root: u32) -> Mem {
    let mut parent: HashMap<u32, u32> = HashMap::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // The ppid is the 2nd field after the parenthesised command name.
            if let Some(after) = stat.rsplit_once(')').map(|(_, a)| a)
                && let Some(ppid) = after.split_whitespace().nth(1).and_then(|p| p.parse().ok())
            {
                parent.insert(pid, ppid);
            }
        }
    }
    let in_tree = |mut p: u32| -> bool {
        for _ in 0..64 {
            if p == root {
                return true;
            }
            match parent.get(&p) {
                Some(&pp) if pp != 0 => p = pp,
                _ => return false,
            }
        }
        false
    };
    let mut m = Mem::default();
    for &pid in parent.keys() {
        if !in_tree(pid) {
            continue;
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rollup =
            std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        m.rss_kb += field_kb(&status, "VmRSS:").unwrap_or(0);
        m.pss_kb += field_kb(&rollup, "Pss:").unwrap_or(0);
        m.processes += 1;
    }
    m
}

pub async fn run(a: IdleArgs) -> Result<serde_json::Value> {
    // One session first so lazily-initialised server state is not billed to the idlers.
    let warm = crate::imap::Imap::login(&a.addr, &a.user.replace("{}", "0"), &a.pass).await?;
    warm.logout().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = tree_memory(a.pid);
    if before.processes == 0 {
        bail!("no process {}", a.pid);
    }
    let start = Instant::now();
    let mut sessions = crate::imap::login_many(
        &a.addr,
        &a.user,
        a.users,
        &a.pass,
        a.clients,
        a.login_parallel,
    )
    .await?;
    let mut tags = Vec::with_capacity(sessions.len());
    for s in sessions.iter_mut() {
        let r = s.cmd("SELECT INBOX").await?;
        if !r.ok {
            bail!("SELECT failed: {}", r.text);
        }
        tags.push(s.idle_start().await?);
    }
    let open_ms = start.elapsed().as_secs_f64() * 1000.0;
    // Let the server settle (freed login buffers, exited login processes).
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let after = tree_memory(a.pid);
    let n = a.clients as f64;
    let out = json!({
        "clients": a.clients, "open_ms": round3(open_ms),
        "rss_before_kb": before.rss_kb, "rss_after_kb": after.rss_kb,
        "pss_before_kb": before.pss_kb, "pss_after_kb": after.pss_kb,
        "processes_before": before.processes, "processes_after": after.processes,
        "rss_per_conn_kb": round3((after.rss_kb as f64 - before.rss_kb as f64) / n),
        "pss_per_conn_kb": round3((after.pss_kb as f64 - before.pss_kb as f64) / n),
    });
    for (s, t) in sessions.iter_mut().zip(tags) {
        let _ = s.idle_done(&t).await;
    }
    Ok(out)
}
