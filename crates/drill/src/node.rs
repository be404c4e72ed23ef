//! `bulwark serve` nodes as real child processes: each with its own data dir and config
//! (`store = "postgres://…"`, listeners on ports picked once so a restarted node comes back on
//! the same addresses), started, signalled (SIGKILL, SIGTERM, SIGHUP) and restarted.

use crate::DrillError;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long a node may take from spawn to announcing all its listeners.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Listeners every drill node runs: inbound SMTP, IMAP, HTTP (JMAP + /readyz).
const LISTENERS: [&str; 3] = ["smtp", "imap", "http"];
/// The environment variable that would override every node's `node_id` alike.
const NODE_ID_ENV: &str = "BULWARK_NODE_ID";
/// Tries at a first start when a picked port turns out to be taken.
const PORT_ATTEMPTS: u32 = 3;
/// Connections one IP may hold per protocol: all drill clients come from 127.0.0.1.
const MAX_CONNECTIONS_PER_IP: u32 = 500;

/// A free TCP port on 127.0.0.1 (the OS picks; we release it for the node to bind).
pub fn free_port() -> Result<u16, DrillError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| DrillError::io("find a free port", e))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| DrillError::io("find a free port", e))
}

pub struct Node {
    pub name: String,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub smtp: String,
    pub imap: String,
    pub http: String,
    store: String,
    bin: PathBuf,
    /// Runs the node through this command prefix (`ip netns exec NS`), if any.
    wrapper: Vec<String>,
    child: Option<Child>,
}

/// Where a node runs: the IP its listeners bind and an optional command prefix.
#[derive(Debug, Clone)]
pub struct Placement {
    pub ip: String,
    pub wrapper: Vec<String>,
}

impl Default for Placement {
    fn default() -> Self {
        Placement {
            ip: "127.0.0.1".to_string(),
            wrapper: Vec::new(),
        }
    }
}

/// Sends `signal` to `pid`.
#[allow(unsafe_code)] // FFI: see the SAFETY comment inside
pub fn send_signal(pid: u32, signal: libc::c_int) -> Result<(), DrillError> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| DrillError::Setup(format!("pid {pid} out of range")))?;
    // SAFETY: kill(2) with a pid of a child we spawned; no memory is shared.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc == 0 {
        Ok(())
    } else {
        Err(DrillError::io(
            "send a signal",
            std::io::Error::last_os_error(),
        ))
    }
}

impl Node {
    pub fn new(bin: &Path, base: &Path, index: usize, store: &str) -> Result<Node, DrillError> {
        Node::placed(bin, base, index, store, &Placement::default())
    }

    /// A node whose listeners bind `placement.ip` (ports picked free on the host: a fresh
    /// network namespace has every port free).
    pub fn placed(
        bin: &Path,
        base: &Path,
        index: usize,
        store: &str,
        placement: &Placement,
    ) -> Result<Node, DrillError> {
        let ip = &placement.ip;
        let name = format!("node{}", index + 1);
        let dir = base.join(&name);
        std::fs::create_dir_all(dir.join("data"))
            .map_err(|e| DrillError::io("create a node dir", e))?;
        let node = Node {
            config: dir.join("bulwark.toml"),
            smtp: format!("{ip}:{}", free_port()?),
            imap: format!("{ip}:{}", free_port()?),
            http: format!("{ip}:{}", free_port()?),
            name,
            dir,
            store: store.to_string(),
            bin: bin.to_path_buf(),
            wrapper: placement.wrapper.clone(),
            child: None,
        };
        node.write_config(&node.good_config())?;
        Ok(node)
    }

    /// The node's working config.
    pub fn good_config(&self) -> String {
        format!(
            "hostname = \"{name}.{domain}\"\n\
             data_dir = \"{data}\"\n\
             store = \"{store}\"\n\
             node_id = \"{name}\"\n\n\
             [listen]\nsmtp = \"{smtp}\"\nimap = \"{imap}\"\nhttp = \"{http}\"\n\n\
             [limits]\nmax_connections_per_ip = {MAX_CONNECTIONS_PER_IP}\n\n\
             [auth]\nallow_plaintext_on_loopback = true\n\n\
             [auth_checks]\nenabled = false\n\n\
             [log]\nlevel = \"warn\"\n",
            name = self.name,
            domain = crate::message::DOMAIN,
            data = self.dir.join("data").display(),
            store = self.store,
            smtp = self.smtp,
            imap = self.imap,
            http = self.http,
        )
    }

    pub fn write_config(&self, text: &str) -> Result<(), DrillError> {
        std::fs::write(&self.config, text).map_err(|e| DrillError::io("write a node config", e))
    }

    /// Runs an admin command (`bulwark --config … ARGS`) with optional standard input.
    pub async fn admin(&self, args: &[&str], stdin: Option<&str>) -> Result<String, DrillError> {
        use tokio::io::AsyncWriteExt;
        let mut c = Command::new(&self.bin);
        c.arg("--config")
            .arg(&self.config)
            .env_remove(NODE_ID_ENV)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = c
            .spawn()
            .map_err(|e| DrillError::io("run the bulwark binary", e))?;
        if let Some(mut input) = child.stdin.take() {
            let _ = input.write_all(stdin.unwrap_or("").as_bytes()).await;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| DrillError::io("run the bulwark binary", e))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            Err(DrillError::Setup(format!(
                "`bulwark {}` on {} failed ({}): {}",
                args.join(" "),
                self.name,
                out.status,
                text.trim()
            )))
        }
    }

    /// First start: like [`Node::start`], but when a picked port was taken meanwhile (another
    /// program bound it between our probe and the node's bind), picks new ports and retries.
    pub async fn start_first(&mut self) -> Result<(), DrillError> {
        let mut attempt = 1;
        loop {
            match self.start().await {
                Err(e) if attempt < PORT_ATTEMPTS && e.to_string().contains("cannot listen") => {
                    attempt += 1;
                    let ip = self.smtp.rsplit_once(':').map(|(ip, _)| ip.to_string());
                    let ip = ip.unwrap_or_else(|| "127.0.0.1".to_string());
                    self.smtp = format!("{ip}:{}", free_port()?);
                    self.imap = format!("{ip}:{}", free_port()?);
                    self.http = format!("{ip}:{}", free_port()?);
                    self.write_config(&self.good_config())?;
                }
                other => return other,
            }
        }
    }

    /// Spawns `bulwark serve` and waits until every listener is announced on stdout.
    pub async fn start(&mut self) -> Result<(), DrillError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("node.log"))
            .map_err(|e| DrillError::io("open a node log", e))?;
        let mut command = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        let mut child = command
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            // Each node's id comes from its own config, not from the drill's environment.
            .env_remove(NODE_ID_ENV)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| DrillError::io("start bulwark serve", e))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| DrillError::Setup("node stdout not captured".into()))?;
        self.child = Some(child);
        let mut lines = BufReader::new(stdout).lines();
        let mut seen: Vec<String> = Vec::new();
        let deadline = Instant::now() + START_TIMEOUT;
        while !LISTENERS.iter().all(|l| seen.iter().any(|s| s == l)) {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = tokio::time::timeout(left, lines.next_line()).await;
            match line {
                Ok(Ok(Some(line))) => {
                    if let Some(rest) = line.strip_prefix("listening: ")
                        && let Some(name) = rest.split_whitespace().next()
                    {
                        seen.push(name.to_string());
                    }
                }
                Ok(Ok(None)) | Ok(Err(_)) => {
                    return Err(DrillError::Setup(format!(
                        "{} exited before listening; its log ends with:\n{}",
                        self.name,
                        self.log_tail()
                    )));
                }
                Err(_) => {
                    return Err(DrillError::Setup(format!(
                        "{} did not announce its listeners within {START_TIMEOUT:?}; log:\n{}",
                        self.name,
                        self.log_tail()
                    )));
                }
            }
        }
        // Keep reading stdout so the node never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    pub fn signal(&self, signal: libc::c_int) -> Result<(), DrillError> {
        let pid = self
            .pid()
            .ok_or_else(|| DrillError::Setup(format!("{} is not running", self.name)))?;
        send_signal(pid, signal)
    }

    /// Whether the process is still running (it has not exited).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Waits for the process to exit; `None` when it is still running at the deadline.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let status = tokio::time::timeout(timeout, child.wait()).await.ok()?.ok();
        if status.is_some() {
            self.child = None;
        }
        status
    }

    /// SIGKILL and reap.
    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }

    /// The last lines of the node's log (standard error), for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Lines of the node's log that mention `needle`.
    pub fn log_mentions(&self, needle: &str) -> bool {
        std::fs::read_to_string(self.dir.join("node.log"))
            .map(|t| t.contains(needle))
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_config_points_at_the_store_and_keeps_its_ports() {
        let base = std::env::temp_dir().join(format!("bulwark-drill-test-{}", std::process::id()));
        let node = Node::new(
            Path::new("/bin/false"),
            &base,
            1,
            "postgres://p@127.0.0.1:1/db",
        );
        let node = match node {
            Ok(n) => n,
            Err(e) => panic!("cannot make a node: {e}"),
        };
        let text = std::fs::read_to_string(&node.config).unwrap_or_default();
        assert!(text.contains("store = \"postgres://p@127.0.0.1:1/db\""));
        assert!(text.contains("node_id = \"node2\""));
        assert!(text.contains(&format!("imap = \"{}\"", node.imap)));
        assert_ne!(node.smtp, node.imap);
        let _ = std::fs::remove_dir_all(&base);
    }
}
