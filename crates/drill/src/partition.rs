//! `partition`: the last of 3 nodes runs in its own network namespace with two veth links to
//! the host: one carries its PostgreSQL traffic, the other its clients. The drill takes the
//! PostgreSQL link down (packets vanish: no reset, like a real partition) for the outage, while
//! clients still reach the node, then brings it back. Needs root and `ip netns`; otherwise the
//! drill is skipped and says why. The links use 10.254.0.0/16 addresses that exist only
//! between this host and its namespace.

use crate::DrillError;
use crate::drills::{Ctx, begin_split, finish, say};
use crate::node::Placement;
use crate::report::Figures;
use std::process::{Command, Stdio};
use std::time::Instant;

/// The two links of the partitioned node.
pub struct Split {
    ns: String,
    pg_link: String,
    /// Host end of the PostgreSQL link (PostgreSQL listens here too).
    pub pg_host_ip: String,
    /// The node's address on the client link (its listeners bind here).
    pub ns_client_ip: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Split {
    /// Creates the namespace and both links; `Err(why)` when the machine does not allow it.
    #[allow(unsafe_code)] // FFI: see the SAFETY comment inside
    pub fn create() -> Result<Split, String> {
        // SAFETY: getuid has no preconditions and cannot fail.
        if unsafe { libc::getuid() } != 0 {
            return Err("network namespaces need root".to_string());
        }
        let tag = std::process::id() % 100_000;
        let subnet = (std::process::id() % 120) * 2 + 2;
        let split = Split {
            ns: format!("bwdrill{tag}"),
            pg_link: format!("bwp{tag}h"),
            pg_host_ip: format!("10.254.{subnet}.1"),
            ns_client_ip: format!("10.254.{}.2", subnet + 1),
        };
        ip(&["netns", "add", &split.ns])?;
        // From here on, Drop removes the namespace (and the links inside it) on any error.
        let ns = split.ns.as_str();
        let links = [
            (split.pg_link.clone(), format!("bwp{tag}n"), subnet),
            (format!("bwc{tag}h"), format!("bwc{tag}n"), subnet + 1),
        ];
        for (host_if, ns_if, net) in &links {
            ip(&[
                "link", "add", host_if, "type", "veth", "peer", "name", ns_if,
            ])?;
            ip(&["link", "set", ns_if, "netns", ns])?;
            ip(&["addr", "add", &format!("10.254.{net}.1/24"), "dev", host_if])?;
            ip(&["link", "set", host_if, "up"])?;
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("10.254.{net}.2/24"),
                "dev",
                ns_if,
            ])?;
            ip(&["-n", ns, "link", "set", ns_if, "up"])?;
        }
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        Ok(split)
    }

    /// How the partitioned node is started: inside the namespace, on the client link.
    pub fn placement(&self) -> Placement {
        Placement {
            ip: self.ns_client_ip.clone(),
            wrapper: vec![
                "ip".to_string(),
                "netns".to_string(),
                "exec".to_string(),
                self.ns.clone(),
            ],
        }
    }

    fn set_pg_link(&self, state: &str) -> Result<(), DrillError> {
        ip(&["link", "set", &self.pg_link, state]).map_err(DrillError::Setup)
    }
}

impl Drop for Split {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.ns]);
        let _ = ip(&["link", "del", &self.pg_link]);
    }
}

pub async fn run(ctx: &Ctx) -> Result<Figures, DrillError> {
    let split = match Split::create() {
        Ok(s) => s,
        Err(why) => return Ok(Figures::skipped("partition", why)),
    };
    let r = begin_split(ctx, "partition", 3, Some(&split)).await?;
    let cut_node = r.cluster.nodes.len() - 1;
    say(
        r.drill,
        &format!(
            "cutting {} off from PostgreSQL for {:?} (clients still reach it)",
            r.cluster.nodes[cut_node].name, ctx.timing.outage
        ),
    );
    let fault = Instant::now();
    split.set_pg_link("down")?;
    tokio::time::sleep(ctx.timing.outage).await;
    let back = Instant::now();
    split.set_pg_link("up")?;
    say(r.drill, "link back up");
    let figures = finish(ctx, r, fault, back, &[]).await;
    drop(split);
    Ok(figures)
}
