//! Where the machine's CPU went during a workload: the whole machine's busy share and the
//! shares of the server processes (`postgres`, `bulwark`, Dovecot's and Postfix's), read from
//! `/proc` before and after the run. Shares are of all cores together (100 % = every core
//! busy), so "saturated" and "who used it" are visible next to each throughput figure.

use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// Process names (`/proc/PID/stat` comm) whose CPU is reported, each under this key.
const TRACKED: &[(&str, &str)] = &[
    ("postgres", "cpu_postgres_pct"),
    ("bulwark", "cpu_bulwark_pct"),
    ("bulwark-bench", "cpu_client_pct"),
    ("dovecot", "cpu_dovecot_pct"),
    ("imap", "cpu_dovecot_pct"),
    ("lmtp", "cpu_dovecot_pct"),
    ("smtpd", "cpu_postfix_pct"),
    ("cleanup", "cpu_postfix_pct"),
    ("qmgr", "cpu_postfix_pct"),
];

pub struct Sample {
    total: u64,
    idle: u64,
    /// pid → (comm, utime + stime)
    procs: HashMap<u32, (String, u64)>,
}

pub fn sample() -> Sample {
    let (total, idle) = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|text| {
            let line = text.lines().next()?.to_owned();
            let fields: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .take(8)
                .filter_map(|f| f.parse().ok())
                .collect();
            let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
            Some((fields.iter().sum(), idle))
        })
        .unwrap_or((0, 0));
    let mut procs = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(p) = proc_ticks(pid) {
                procs.insert(pid, p);
            }
        }
    }
    Sample { total, idle, procs }
}

/// (comm, utime + stime) of one process.
fn proc_ticks(pid: u32) -> Option<(String, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let rest: Vec<&str> = text.get(close + 2..)?.split_whitespace().collect();
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

/// The shares between two samples, as JSON fields (`cpu_busy_pct` and one per tracked
/// process kind that used any CPU).
pub fn figures(before: &Sample, after: &Sample) -> Map<String, Value> {
    let mut out = Map::new();
    let total = after.total.saturating_sub(before.total);
    if total == 0 {
        return out;
    }
    let pct = |ticks: u64| (1000.0 * ticks as f64 / total as f64).round() / 10.0;
    out.insert(
        "cpu_busy_pct".into(),
        json!(pct(
            total.saturating_sub(after.idle.saturating_sub(before.idle))
        )),
    );
    let mut by_key: HashMap<&str, u64> = HashMap::new();
    for (pid, (comm, ticks)) in &after.procs {
        let earlier = before
            .procs
            .get(pid)
            .filter(|(c, _)| c == comm)
            .map_or(0, |(_, t)| *t);
        let used = ticks.saturating_sub(earlier);
        // "lmtp" is Dovecot's LMTP or Postfix's LMTP client: counted once, as Dovecot's.
        if let Some((_, key)) = TRACKED.iter().find(|(name, _)| name == comm) {
            *by_key.entry(key).or_default() += used;
        }
    }
    for (key, ticks) in by_key {
        if ticks > 0 {
            out.insert(key.into(), json!(pct(ticks)));
        }
    }
    out
}
