//! The drills. Each one: a fresh cluster, steady load, one fault, recovery, verification.
//! Durations come from [`Timing`]: `--quick` for the test command, full for `bulwark drill all`.

use crate::DrillError;
use crate::cluster::{Cluster, PASS, USER};
use crate::load::{Load, Mix, Outcomes};
use crate::report::Figures;
use crate::verify;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Clients per kind in every drill.
const MIX: Mix = Mix {
    smtp: 3,
    imap: 2,
    jmap: 2,
};
/// Client error texts copied into the report's notes.
const NOTED_ERRORS: usize = 4;
/// How long the load may take to show its first successes after the nodes are up.
const LOAD_START_TIMEOUT: Duration = Duration::from_secs(30);
/// Successful operations that mean "the load is flowing".
const LOAD_FLOWING: usize = 10;

#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Load before the fault.
    pub warmup: Duration,
    /// How long an outage lasts (store, auth, bad config in place).
    pub outage: Duration,
    /// Load after the fault is lifted.
    pub after: Duration,
    /// Pause between nodes in a rolling restart.
    pub between_nodes: Duration,
    /// How long verification waits for acknowledged mail to appear.
    pub verify_deadline: Duration,
    /// How long a node may drain after SIGTERM before it counts as stuck.
    pub drain_deadline: Duration,
}

impl Timing {
    pub fn quick() -> Timing {
        Timing {
            warmup: Duration::from_secs(2),
            outage: Duration::from_secs(5),
            after: Duration::from_secs(4),
            between_nodes: Duration::from_secs(1),
            verify_deadline: Duration::from_secs(30),
            drain_deadline: Duration::from_secs(45),
        }
    }

    /// The durations: 30 s outages under load.
    pub fn full() -> Timing {
        Timing {
            warmup: Duration::from_secs(10),
            outage: Duration::from_secs(30),
            after: Duration::from_secs(20),
            between_nodes: Duration::from_secs(5),
            verify_deadline: Duration::from_secs(120),
            drain_deadline: Duration::from_secs(45),
        }
    }
}

pub struct Ctx {
    pub bin: PathBuf,
    pub timing: Timing,
    pub keep: bool,
}

pub(crate) fn say(drill: &str, what: &str) {
    eprintln!("drill {drill}: {what}");
}

/// A cluster under load, between set-up and verification.
pub(crate) struct Running {
    pub drill: &'static str,
    pub cluster: Cluster,
    load: Load,
    run: String,
    load_started: Instant,
    failures: Vec<String>,
    notes: Vec<String>,
}

async fn begin(ctx: &Ctx, drill: &'static str, nodes: usize) -> Result<Running, DrillError> {
    begin_split(ctx, drill, nodes, None).await
}

/// Starts the cluster (the last node inside `split`'s namespace, if given) and the load.
pub(crate) async fn begin_split(
    ctx: &Ctx,
    drill: &'static str,
    nodes: usize,
    split: Option<&crate::partition::Split>,
) -> Result<Running, DrillError> {
    say(drill, &format!("starting PostgreSQL and {nodes} nodes"));
    let cluster = Cluster::start_split(&ctx.bin, drill, nodes, ctx.keep, split).await?;
    let run = run_id();
    let load = Load::start(cluster.targets(), &run, USER, PASS, MIX);
    let load_started = Instant::now();
    let running = Running {
        drill,
        cluster,
        load,
        run,
        load_started,
        failures: Vec::new(),
        notes: Vec::new(),
    };
    while running.load.successes() < LOAD_FLOWING {
        if load_started.elapsed() > LOAD_START_TIMEOUT {
            let outcomes = running.load.stop().await;
            running.cluster.shutdown().await;
            return Err(DrillError::Setup(format!(
                "the load never got going ({} successes in {LOAD_START_TIMEOUT:?}); clients saw: {}",
                outcomes.successes(),
                outcomes.errors.join(" | ")
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    say(drill, "load is flowing");
    tokio::time::sleep(ctx.timing.warmup).await;
    Ok(running)
}

/// Runs the load a while longer, stops it, verifies and shuts the cluster down.
pub(crate) async fn finish(
    ctx: &Ctx,
    mut r: Running,
    fault: Instant,
    recover_from: Instant,
    stopped_on_purpose: &[usize],
) -> Figures {
    tokio::time::sleep(ctx.timing.after).await;
    r.failures
        .extend(r.cluster.unexpected_deaths(stopped_on_purpose));
    let outcomes: Outcomes = r.load.stop().await;
    let load_seconds = r.load_started.elapsed().as_secs_f64();
    say(
        r.drill,
        &format!(
            "load stopped: {} acknowledged, {} client errors; verifying over IMAP",
            outcomes.acked.len(),
            outcomes.client_errors()
        ),
    );
    let mut f = Figures {
        drill: r.drill.to_string(),
        nodes: r.cluster.nodes.len(),
        acked: outcomes.acked.len() as u64,
        client_errors: outcomes.client_errors(),
        recover_seconds: outcomes.recovery_seconds(fault, recover_from),
        relogins: outcomes.relogins,
        successful_operations: outcomes.successes(),
        longest_operation_seconds: outcomes.longest_operation().as_secs_f64(),
        load_seconds,
        ..Figures::default()
    };
    let live = r.cluster.live_imap();
    match verify::verify(
        &live,
        USER,
        PASS,
        &outcomes.acked,
        &r.run,
        ctx.timing.verify_deadline,
    )
    .await
    {
        Ok((counts, waited)) => {
            f.found = counts.found;
            f.lost = counts.lost;
            f.duplicated = counts.duplicated;
            f.verify_seconds = waited;
            if !counts.lost_examples.is_empty() {
                r.notes
                    .push(format!("lost, e.g.: {}", counts.lost_examples.join(" ")));
            }
        }
        Err(e) => {
            f.lost = f.acked;
            r.failures.push(format!("verification: {e}"));
        }
    }
    r.notes.push(format!(
        "{} operations succeeded in {:.0} s of load; client errors by kind: {}; \
         longest single operation {:.1} s; verification waited {:.1} s",
        f.successful_operations,
        f.load_seconds,
        outcomes.errors_by_kind(),
        f.longest_operation_seconds,
        f.verify_seconds
    ));
    if !outcomes.readiness.is_empty() {
        r.notes.push(format!(
            "load balancer saw: {}",
            outcomes.readiness.join("; ")
        ));
    }
    if f.recover_seconds.is_none() {
        r.notes
            .push("some client kind never succeeded again after the fault".to_string());
    }
    r.notes.extend(
        outcomes
            .relogin_examples
            .iter()
            .take(NOTED_ERRORS)
            .map(|e| format!("re-login forced: {e}")),
    );
    r.notes.extend(
        outcomes
            .errors
            .iter()
            .take(NOTED_ERRORS)
            .map(|e| format!("client saw: {e}")),
    );
    f.failures = r.failures;
    f.notes = r.notes;
    r.cluster.shutdown().await;
    f
}

fn run_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("{}x{}", millis % 100_000_000, std::process::id())
}

/// 3 nodes under SMTP + IMAP + JMAP load; SIGKILL node 2; clients move to the others.
pub async fn node_kill(ctx: &Ctx) -> Result<Figures, DrillError> {
    let mut r = begin(ctx, "node-kill", 3).await?;
    say(r.drill, "SIGKILL node2");
    let fault = Instant::now();
    r.cluster.nodes[1].kill().await;
    tokio::time::sleep(ctx.timing.outage).await;
    Ok(finish(ctx, r, fault, fault, &[1]).await)
}

/// SIGTERM (drain) and restart each node in turn under load.
pub async fn rolling_restart(ctx: &Ctx) -> Result<Figures, DrillError> {
    let mut r = begin(ctx, "rolling-restart", 3).await?;
    let fault = Instant::now();
    // Recovery counts from the last node's SIGTERM (earlier nodes' blips are long over).
    let mut last_term = fault;
    for i in 0..r.cluster.nodes.len() {
        let node = &mut r.cluster.nodes[i];
        say(
            r.drill,
            &format!("SIGTERM {} (drain), then start it again", node.name),
        );
        last_term = Instant::now();
        node.signal(libc::SIGTERM)?;
        let drained = Instant::now();
        match node.wait_exit(ctx.timing.drain_deadline).await {
            Some(status) if status.success() => r.notes.push(format!(
                "{} drained and exited in {:.1} s",
                node.name,
                drained.elapsed().as_secs_f64()
            )),
            Some(status) => r
                .failures
                .push(format!("{} exited with {status} after SIGTERM", node.name)),
            None => {
                r.failures.push(format!(
                    "{} still running {:?} after SIGTERM (drain does not finish)",
                    node.name, ctx.timing.drain_deadline
                ));
                node.kill().await;
            }
        }
        node.start().await?;
        tokio::time::sleep(ctx.timing.between_nodes).await;
    }
    Ok(finish(ctx, r, fault, last_term, &[]).await)
}

/// Stops PostgreSQL for the outage under load, then starts it again on the same port.
pub async fn store_outage(ctx: &Ctx) -> Result<Figures, DrillError> {
    let mut r = begin(ctx, "store-outage", 2).await?;
    say(
        r.drill,
        &format!("stopping PostgreSQL for {:?}", ctx.timing.outage),
    );
    let fault = Instant::now();
    r.cluster.pg.stop(false)?;
    tokio::time::sleep(ctx.timing.outage).await;
    // Recovery counts from the moment the fault starts to be lifted.
    let back = Instant::now();
    r.cluster.pg.start()?;
    say(r.drill, "PostgreSQL is back");
    Ok(finish(ctx, r, fault, back, &[]).await)
}

/// Hides the accounts table (rename, as the superuser) for the outage, then restores it.
pub async fn auth_outage(ctx: &Ctx) -> Result<Figures, DrillError> {
    let r = begin(ctx, "auth-outage", 2).await?;
    say(
        r.drill,
        &format!("accounts table unreadable for {:?}", ctx.timing.outage),
    );
    let fault = Instant::now();
    r.cluster
        .pg
        .execute("ALTER TABLE accounts RENAME TO accounts_hidden_by_drill")
        .await?;
    tokio::time::sleep(ctx.timing.outage).await;
    let back = Instant::now();
    r.cluster
        .pg
        .execute("ALTER TABLE accounts_hidden_by_drill RENAME TO accounts")
        .await?;
    say(r.drill, "accounts table restored");
    Ok(finish(ctx, r, fault, back, &[]).await)
}

/// A config every node must refuse: a count that is not a number.
fn broken_config(good: &str) -> String {
    good.replace(
        "max_connections_per_ip = ",
        "max_connections_per_ip = \"plenty\" # was ",
    )
}

/// Pushes a broken config to every node and SIGHUPs them; they must keep serving on the
/// last good one. Then the good config goes back (and a reload of it must work too).
pub async fn bad_config(ctx: &Ctx) -> Result<Figures, DrillError> {
    let mut r = begin(ctx, "bad-config", 3).await?;
    say(r.drill, "writing a broken config to every node + SIGHUP");
    let fault = Instant::now();
    for node in &r.cluster.nodes {
        node.write_config(&broken_config(&node.good_config()))?;
    }
    if r.cluster.nodes[0]
        .admin(&["config", "check"], None)
        .await
        .is_ok()
    {
        r.failures
            .push("`bulwark config check` accepted the broken config".to_string());
    }
    // node1 by `bulwark config reload` (must be refused with the problem), the others by SIGHUP.
    match r.cluster.nodes[0].admin(&["config", "reload"], None).await {
        Ok(out) => r.failures.push(format!(
            "`bulwark config reload` accepted the broken config: {}",
            out.trim()
        )),
        Err(e) if e.to_string().contains("max_connections_per_ip") => r.notes.push(
            "node1: `bulwark config reload` refused the broken config, naming the key".into(),
        ),
        Err(e) => r.failures.push(format!(
            "`bulwark config reload` failed without naming the problem: {e}"
        )),
    }
    for node in &r.cluster.nodes[1..] {
        node.signal(libc::SIGHUP)?;
    }
    tokio::time::sleep(ctx.timing.outage).await;
    r.failures.extend(r.cluster.unexpected_deaths(&[]));
    for node in &r.cluster.nodes {
        if !node.log_mentions("plenty") && !node.log_mentions("max_connections_per_ip") {
            r.notes.push(format!(
                "{} did not log the refused config (expected a FILE:LINE message)",
                node.name
            ));
        }
    }
    let back = Instant::now();
    for node in &r.cluster.nodes {
        node.write_config(&node.good_config())?;
    }
    if let Err(e) = r.cluster.nodes[0].admin(&["config", "reload"], None).await {
        r.failures
            .push(format!("reloading the good config again failed: {e}"));
    }
    for node in &r.cluster.nodes[1..] {
        if node.pid().is_some() {
            node.signal(libc::SIGHUP)?;
        }
    }
    Ok(finish(ctx, r, fault, back, &[]).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_config_changes_only_the_count() {
        let good = "[limits]\nmax_connections_per_ip = 500\n";
        assert_eq!(
            broken_config(good),
            "[limits]\nmax_connections_per_ip = \"plenty\" # was 500\n"
        );
    }

    #[test]
    fn quick_timing_is_shorter_than_full() {
        let (q, f) = (Timing::quick(), Timing::full());
        assert!(q.outage < f.outage && q.warmup < f.warmup && q.after < f.after);
        assert_eq!(f.outage, Duration::from_secs(30));
    }
}
