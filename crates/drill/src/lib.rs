//! Outage drills (`bulwark drill <name>`): each starts a real PostgreSQL and real `bulwark serve`
//! nodes on loopback, drives SMTP + IMAP + JMAP load with real protocol clients, injects one
//! fault, waits for recovery, verifies every acknowledged message over IMAP and prints a table:
//! acknowledged, found, lost, duplicated, client errors, seconds to recover, re-logins.
//!
//! A drill passes when lost = 0, duplicated = 0 and re-logins = 0 (and every client kind
//! works again after the fault); [`run`] returns whether all drills passed.

mod cluster;
mod drills;
mod imap;
mod jmap;
mod load;
mod message;
mod node;
mod partition;
mod pg;
mod report;
mod smtp;
mod verify;
mod wire;

pub use drills::Timing;
pub use report::Figures;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    /// Setting up or steering the drill failed (PostgreSQL, a node, the admin CLI).
    #[error("{0}")]
    Setup(String),
    /// A protocol client failed (connection, timeout, unexpected reply).
    #[error("{0}")]
    Client(String),
    #[error("cannot {what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
}

impl DrillError {
    pub fn io(what: &'static str, source: std::io::Error) -> DrillError {
        DrillError::Io { what, source }
    }
}

/// The drills, in the order `all` runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DrillName {
    /// 3 nodes under SMTP + IMAP + JMAP load; SIGKILL one; clients reconnect elsewhere.
    NodeKill,
    /// Stop PostgreSQL for 30 s under load, then start it again.
    StoreOutage,
    /// Make the accounts table unreadable for 30 s, then restore it.
    AuthOutage,
    /// Push a broken config to every node and reload (SIGHUP); they keep serving.
    BadConfig,
    /// SIGTERM (drain) and restart every node, one by one, under load.
    RollingRestart,
    /// Cut one node off from PostgreSQL with network namespaces (skipped if unavailable).
    Partition,
    /// Every drill above, in this order.
    All,
}

impl DrillName {
    const EACH: [DrillName; 6] = [
        DrillName::NodeKill,
        DrillName::StoreOutage,
        DrillName::AuthOutage,
        DrillName::BadConfig,
        DrillName::RollingRestart,
        DrillName::Partition,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DrillName::NodeKill => "node-kill",
            DrillName::StoreOutage => "store-outage",
            DrillName::AuthOutage => "auth-outage",
            DrillName::BadConfig => "bad-config",
            DrillName::RollingRestart => "rolling-restart",
            DrillName::Partition => "partition",
            DrillName::All => "all",
        }
    }
}

const DRILL_HELP: &str = "\
Examples:
  bulwark drill node-kill
  bulwark drill all --quick                 # a few seconds of load each (the test command)
  bulwark drill all --json drills.json      # full durations (30 s outages), figures as JSON

Needs Debian's PostgreSQL server binaries (/usr/lib/postgresql/*/bin) and, for `partition`,
root with `ip netns`. Everything runs in a temp dir, on 127.0.0.1 (and, for `partition`, on a
private link to a network namespace of its own); nothing else is touched.
Exit status 1 when a drill lost or duplicated acknowledged mail, forced a re-login, or failed.";

/// `bulwark drill …` arguments (flattened into the binary's CLI).
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = DRILL_HELP)]
pub struct DrillArgs {
    /// Which drill to run.
    #[arg(value_enum)]
    pub name: DrillName,
    /// Short form: a few seconds of load and 5 s outages instead of 30 s.
    #[arg(long)]
    pub quick: bool,
    /// Also write the figures as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Keep each drill's temp dir (node logs, configs, PostgreSQL log) for inspection.
    #[arg(long)]
    pub keep: bool,
    /// The bulwark binary to run as nodes (default: this executable).
    #[arg(long, value_name = "FILE", hide = true)]
    pub bin: Option<PathBuf>,
}

/// Runs the chosen drill(s), prints the table, writes `--json`. `Ok(true)` = all passed.
pub fn run(args: DrillArgs) -> Result<bool, DrillError> {
    let bin = match &args.bin {
        Some(b) => b.clone(),
        None => std::env::current_exe().map_err(|e| DrillError::io("find this executable", e))?,
    };
    let ctx = drills::Ctx {
        bin,
        timing: if args.quick {
            Timing::quick()
        } else {
            Timing::full()
        },
        keep: args.keep,
    };
    let chosen: Vec<DrillName> = if args.name == DrillName::All {
        DrillName::EACH.to_vec()
    } else {
        vec![args.name]
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| DrillError::io("start the async runtime", e))?;
    let all = runtime.block_on(async {
        let mut all = Vec::new();
        for name in chosen {
            let started = std::time::Instant::now();
            // Ctrl-C drops the drill: its nodes are killed, PostgreSQL stopped, namespace removed.
            let figures = tokio::select! {
                result = run_one(&ctx, name) => match result {
                    Ok(f) => f,
                    Err(e) => Figures::failed(name.as_str(), e.to_string()),
                },
                _ = tokio::signal::ctrl_c() => {
                    all.push(Figures::failed(name.as_str(), "interrupted".to_string()));
                    break;
                }
            };
            eprintln!(
                "drill {}: done in {:.0} s\n{}{}",
                name.as_str(),
                started.elapsed().as_secs_f64(),
                report::table(std::slice::from_ref(&figures)),
                report::details(std::slice::from_ref(&figures))
            );
            all.push(figures);
        }
        all
    });
    println!("{}", report::table(&all));
    print!("{}", report::details(&all));
    if let Some(path) = &args.json {
        let doc = serde_json::json!({
            "command": format!("bulwark drill {}{}", args.name.as_str(), if args.quick { " --quick" } else { "" }),
            "quick": args.quick,
            "drills": all,
        });
        let text = serde_json::to_string_pretty(&doc)
            .map_err(|e| DrillError::Setup(format!("cannot encode the figures: {e}")))?;
        std::fs::write(path, text).map_err(|e| DrillError::io("write the --json file", e))?;
    }
    Ok(all.iter().all(Figures::passed))
}

async fn run_one(ctx: &drills::Ctx, name: DrillName) -> Result<Figures, DrillError> {
    match name {
        DrillName::NodeKill => drills::node_kill(ctx).await,
        DrillName::StoreOutage => drills::store_outage(ctx).await,
        DrillName::AuthOutage => drills::auth_outage(ctx).await,
        DrillName::BadConfig => drills::bad_config(ctx).await,
        DrillName::RollingRestart => drills::rolling_restart(ctx).await,
        DrillName::Partition => partition::run(ctx).await,
        DrillName::All => Ok(Figures::failed("all", "not a single drill".to_string())),
    }
}
