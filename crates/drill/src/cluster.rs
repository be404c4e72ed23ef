//! One drill's world: a PostgreSQL server, N nodes sharing it, the drill account, and the
//! temp directory holding them all (removed at the end unless `--keep`).

use crate::DrillError;
use crate::load::Target;
use crate::node::Node;
use crate::pg::Postgres;
use std::path::{Path, PathBuf};

/// The account every client uses.
pub const USER: &str = "load@drill.test";
pub const PASS: &str = "drill-password-not-secret";

pub struct Cluster {
    pub base: PathBuf,
    pub pg: Postgres,
    pub nodes: Vec<Node>,
    keep: bool,
}

impl Cluster {
    /// Starts PostgreSQL, creates the domain and account through the first node's admin CLI
    /// (which also creates the schema), then starts every node.
    ///
    /// With `split`, the LAST node runs inside the split's network namespace and reaches
    /// PostgreSQL over the split's own link.
    pub async fn start_split(
        bin: &Path,
        drill: &str,
        nodes: usize,
        keep: bool,
        split: Option<&crate::partition::Split>,
    ) -> Result<Cluster, DrillError> {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let base = std::env::temp_dir().join(format!(
            "bulwark-drill-{drill}-{}-{stamp}",
            std::process::id()
        ));
        std::fs::create_dir_all(&base).map_err(|e| DrillError::io("create the drill dir", e))?;
        // Everything under base must be reachable by the postgres user (its data dir lives here).
        set_mode(&base, 0o755)?;
        let pg = Postgres::start_new_listening(&base, split.map(|s| s.pg_host_ip.as_str()))?;
        let url = pg.url();
        let mut cluster = Cluster {
            base: base.clone(),
            pg,
            nodes: Vec::new(),
            keep,
        };
        for i in 0..nodes {
            let node = match split {
                Some(s) if i + 1 == nodes => Node::placed(
                    bin,
                    &base,
                    i,
                    &cluster.pg.url_at(&s.pg_host_ip),
                    &s.placement(),
                )?,
                _ => Node::new(bin, &base, i, &url)?,
            };
            cluster.nodes.push(node);
        }
        let first = &cluster.nodes[0];
        first
            .admin(&["domain", "add", crate::message::DOMAIN], None)
            .await?;
        first
            .admin(
                &["account", "add", USER, "--password-stdin"],
                Some(&format!("{PASS}\n")),
            )
            .await?;
        let starts = cluster.nodes.iter_mut().map(|n| n.start_first());
        for r in futures::future::join_all(starts).await {
            r?;
        }
        Ok(cluster)
    }

    pub fn targets(&self) -> Vec<Target> {
        self.nodes
            .iter()
            .map(|n| Target {
                smtp: n.smtp.clone(),
                imap: n.imap.clone(),
                http: n.http.clone(),
            })
            .collect()
    }

    /// IMAP addresses of nodes still running (verification reads from one of them).
    pub fn live_imap(&mut self) -> Vec<String> {
        self.nodes
            .iter_mut()
            .filter_map(|n| n.is_running().then(|| n.imap.clone()))
            .collect()
    }

    /// Failure notes for nodes that died without being told to.
    pub fn unexpected_deaths(&mut self, except: &[usize]) -> Vec<String> {
        let mut out = Vec::new();
        for (i, n) in self.nodes.iter_mut().enumerate() {
            if !except.contains(&i) && !n.is_running() {
                out.push(format!(
                    "{} is not running (it was not told to stop); log tail:\n{}",
                    n.name,
                    n.log_tail()
                ));
            }
        }
        out
    }

    pub async fn shutdown(mut self) {
        for n in &mut self.nodes {
            n.kill().await;
        }
        let _ = self.pg.stop(true);
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.base);
        } else {
            eprintln!("drill: kept {}", self.base.display());
        }
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), DrillError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| DrillError::io("set permissions on the drill dir", e))
}
