//! Maildir helpers for the peers: count delivered messages, write a big mailbox directly.

use crate::message;
use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

/// Messages in `new/` and `cur/` of each folder.
pub fn count(folders: &[String]) -> u64 {
    let mut total = 0u64;
    for f in folders {
        for sub in ["new", "cur"] {
            if let Ok(rd) = std::fs::read_dir(Path::new(f).join(sub)) {
                total += rd.count() as u64;
            }
        }
    }
    total
}

#[derive(clap::Args, Debug)]
pub struct PopulateArgs {
    /// Maildir folder (new/, cur/, tmp/ are created).
    #[arg(long)]
    pub dir: String,
    #[arg(long, default_value_t = 100_000)]
    pub messages: u64,
    #[arg(long, default_value_t = 2000)]
    pub size: usize,
    #[arg(long, default_value = "big@example.test")]
    pub rcpt: String,
}

/// Writes `messages` files straight into `cur/` (the caller syncs and chowns). Used for
/// Dovecot, whose own first SELECT then indexes them (that warm-up is not timed).
pub fn populate(a: &PopulateArgs) -> Result<serde_json::Value> {
    let start = std::time::Instant::now();
    let dir = Path::new(&a.dir);
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).with_context(|| format!("mkdir {}", a.dir))?;
    }
    let base = 1_736_157_600u64; // 2025-01-06, a fixed date keeps runs comparable
    for n in 0..a.messages {
        let body = message::build(n, a.size, &a.rcpt);
        let name = format!("{}.M{}P1.bench,S={}:2,", base + n, n, body.len());
        let mut f = std::fs::File::create(dir.join("cur").join(name))?;
        f.write_all(&body)?;
    }
    Ok(serde_json::json!({"messages": a.messages, "elapsed_ms": crate::stats::ms(start.elapsed())}))
}
