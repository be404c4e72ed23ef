//! How the command line finds and steers the running server of a data directory.
//!
//! `bulwark serve` writes `DATA_DIR/bulwark.pid` at start (removed at exit) with its pid, node
//! id and http address. `bulwark node drain` sends SIGTERM (an optional timeout goes in
//! `DATA_DIR/drain-request` first); `bulwark config reload` sends SIGHUP and waits for the
//! server to write the outcome to `DATA_DIR/reload-status`.

use crate::config::Config;
use anyhow::{Context, anyhow, bail};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The running server's pid file in the data directory.
pub const PID_FILE: &str = "bulwark.pid";
/// A drain timeout for the next SIGTERM, in seconds (written by `bulwark node drain --timeout`).
pub const DRAIN_REQUEST_FILE: &str = "drain-request";
/// The outcome of the last reload: `GENERATION ok|invalid`, then the message.
pub const RELOAD_STATUS_FILE: &str = "reload-status";
/// How long `bulwark config reload` waits for the server's answer.
const RELOAD_ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Extra time `bulwark node drain` waits beyond the drain timeout for the process to exit.
const DRAIN_EXIT_MARGIN: Duration = Duration::from_secs(10);
/// Poll interval while waiting for the server.
const POLL: Duration = Duration::from_millis(50);
/// Timeout of `bulwark status`'s `/readyz` request.
const READYZ_TIMEOUT: Duration = Duration::from_secs(3);

/// The config reload was refused (exit status 78, like `config check`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReloadRefused(pub String);

/// What the pid file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningServer {
    pub pid: i32,
    pub node_id: String,
    pub http: Option<SocketAddr>,
}

impl RunningServer {
    fn render(&self) -> String {
        let mut s = format!("pid={}\nnode_id={}\n", self.pid, self.node_id);
        if let Some(http) = self.http {
            s.push_str(&format!("http={http}\n"));
        }
        s
    }

    fn parse(text: &str) -> Option<RunningServer> {
        let mut pid = None;
        let mut node_id = String::new();
        let mut http = None;
        for line in text.lines() {
            match line.split_once('=') {
                Some(("pid", v)) => pid = v.trim().parse().ok(),
                Some(("node_id", v)) => node_id = v.trim().to_string(),
                Some(("http", v)) => http = v.trim().parse().ok(),
                _ => {}
            }
        }
        Some(RunningServer {
            pid: pid.filter(|p| *p > 0)?,
            node_id,
            http,
        })
    }
}

/// The pid file of a running server; removed when dropped.
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Writes the pid file; refuses when another live server owns the data directory.
    pub fn create(data_dir: &Path, server: &RunningServer) -> anyhow::Result<PidFile> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        let path = data_dir.join(PID_FILE);
        if let Some(other) = read_pid_file(data_dir)
            && other.pid != server.pid
            && process_alive(other.pid)
        {
            bail!(
                "another server (pid {}) is running on {}; stop it first or use another data_dir",
                other.pid,
                data_dir.display()
            );
        }
        write_atomically(&path, server.render().as_bytes())?;
        Ok(PidFile { path })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Replaces `path` with `bytes` in one rename, so a reader never sees half a file.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

pub fn read_pid_file(data_dir: &Path) -> Option<RunningServer> {
    let text = std::fs::read_to_string(data_dir.join(PID_FILE)).ok()?;
    RunningServer::parse(&text)
}

/// Is there a running process with this pid (signal 0 checks without sending anything)?
/// An exited process its parent has not reaped yet (a zombie) counts as gone.
#[allow(unsafe_code)] // FFI: see the SAFETY comment inside
pub fn process_alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 sends nothing; it only checks that the pid exists.
    let r = unsafe { libc::kill(pid, 0) };
    let exists = r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    exists && !is_zombie(pid)
}

/// Linux: the state letter after the command name in `/proc/PID/stat` is `Z` for a zombie.
fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next())
        })
        == Some('Z')
}

#[allow(unsafe_code)] // FFI: see the SAFETY comment inside
fn send_signal(pid: i32, signal: i32) -> anyhow::Result<()> {
    // SAFETY: kill(2) has no memory effects; the pid comes from the server's own pid file.
    if unsafe { libc::kill(pid, signal) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("cannot signal the server (pid {pid})"));
    }
    Ok(())
}

/// The running server of `data_dir`, or an error that says none runs.
fn running_server(data_dir: &Path) -> anyhow::Result<RunningServer> {
    match read_pid_file(data_dir) {
        Some(s) if process_alive(s.pid) => Ok(s),
        Some(s) => bail!(
            "no server is running on {} (stale pid file for pid {})",
            data_dir.display(),
            s.pid
        ),
        None => bail!(
            "no server is running on {} (no {PID_FILE} there)",
            data_dir.display()
        ),
    }
}

/// Takes (reads and removes) a pending drain timeout request.
pub fn take_drain_request(data_dir: &Path) -> Option<Duration> {
    let path = data_dir.join(DRAIN_REQUEST_FILE);
    let text = std::fs::read_to_string(&path).ok()?;
    let _ = std::fs::remove_file(&path);
    text.trim().parse().ok().map(Duration::from_secs)
}

/// `bulwark node drain [--timeout SECS]`: SIGTERM, then wait for the process to exit.
pub fn drain_running(config: &Config, timeout: Option<u64>) -> anyhow::Result<()> {
    let server = running_server(&config.data_dir)?;
    if let Some(secs) = timeout {
        write_atomically(
            &config.data_dir.join(DRAIN_REQUEST_FILE),
            secs.to_string().as_bytes(),
        )?;
    }
    let wait = timeout
        .map(Duration::from_secs)
        .unwrap_or(config.drain_timeout)
        + DRAIN_EXIT_MARGIN;
    send_signal(server.pid, libc::SIGTERM)?;
    println!(
        "draining node {} (pid {}); waiting up to {} s for it to exit",
        server.node_id,
        server.pid,
        wait.as_secs()
    );
    let deadline = Instant::now() + wait;
    while process_alive(server.pid) {
        if Instant::now() >= deadline {
            bail!("the server (pid {}) is still running", server.pid);
        }
        std::thread::sleep(POLL);
    }
    println!("drained: node {} exited", server.node_id);
    Ok(())
}

/// The outcome of one reload, as the server writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadStatus {
    pub generation: u64,
    pub ok: bool,
    pub message: String,
}

impl ReloadStatus {
    fn render(&self) -> String {
        let word = if self.ok { "ok" } else { "invalid" };
        format!("{} {word}\n{}\n", self.generation, self.message.trim_end())
    }
    fn parse(text: &str) -> Option<ReloadStatus> {
        let (first, message) = text.split_once('\n').unwrap_or((text, ""));
        let (generation, word) = first.split_once(' ')?;
        Some(ReloadStatus {
            generation: generation.parse().ok()?,
            ok: word == "ok",
            message: message.trim_end().to_string(),
        })
    }
}

pub fn read_reload_status(data_dir: &Path) -> Option<ReloadStatus> {
    ReloadStatus::parse(&std::fs::read_to_string(data_dir.join(RELOAD_STATUS_FILE)).ok()?)
}

pub fn write_reload_status(data_dir: &Path, status: &ReloadStatus) -> anyhow::Result<()> {
    write_atomically(
        &data_dir.join(RELOAD_STATUS_FILE),
        status.render().as_bytes(),
    )
}

/// `bulwark config reload`: SIGHUP, then print what the server made of the file.
pub fn reload_running(config_file: &Path) -> anyhow::Result<()> {
    let data_dir = Config::data_dir_of(config_file).ok_or_else(|| {
        anyhow!(
            "cannot read {} to find the data directory",
            config_file.display()
        )
    })?;
    let server = running_server(&data_dir)?;
    let before = read_reload_status(&data_dir).map(|s| s.generation);
    send_signal(server.pid, libc::SIGHUP)?;
    let deadline = Instant::now() + RELOAD_ANSWER_TIMEOUT;
    loop {
        if let Some(status) = read_reload_status(&data_dir)
            && Some(status.generation) != before
        {
            if status.ok {
                println!("{}", status.message);
                return Ok(());
            }
            return Err(ReloadRefused(status.message).into());
        }
        if Instant::now() >= deadline {
            bail!(
                "the server (pid {}) did not answer the reload within {} s",
                server.pid,
                RELOAD_ANSWER_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(POLL);
    }
}

/// `bulwark status`: node id, store backend, and the running server's readiness.
pub async fn status(config: &Config) -> anyhow::Result<()> {
    println!("node id:   {}", config.node_id);
    println!("store:     {}", config.store.describe(&config.data_dir));
    let server = read_pid_file(&config.data_dir).filter(|s| process_alive(s.pid));
    match &server {
        Some(s) => println!("server:    running (pid {}, node id {})", s.pid, s.node_id),
        None => println!("server:    not running"),
    }
    let readiness = match server.as_ref().and_then(|s| s.http) {
        Some(addr) => tokio::task::spawn_blocking(move || get_readyz(addr))
            .await
            .unwrap_or_else(|e| Err(anyhow!("{e}")))
            .unwrap_or_else(|e| format!("unknown ({e:#})")),
        None => {
            let probe = match crate::admin::open_store(config).await {
                Ok(store) => crate::node::probe_store(&*store).await,
                Err(e) => Err(format!("{e:#}")),
            };
            let prefix = if server.is_some() {
                "store check only (the server has no http listener): "
            } else {
                "store check only: "
            };
            match probe {
                Ok(()) => format!("{prefix}store reachable"),
                Err(why) => format!(
                    "{prefix}{}",
                    crate::node::Readiness::store_unreachable(&why).text()
                ),
            }
        }
    };
    println!("readiness: {readiness}");
    Ok(())
}

/// `GET /readyz` → `200 ready` / `503 draining` / ….
fn get_readyz(addr: SocketAddr) -> anyhow::Result<String> {
    let mut tcp = TcpStream::connect_timeout(&addr, READYZ_TIMEOUT)?;
    tcp.set_read_timeout(Some(READYZ_TIMEOUT))?;
    tcp.write_all(format!("GET /readyz HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())?;
    let mut response = String::new();
    tcp.take(64 * 1024).read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .ok_or_else(|| anyhow!("not an HTTP response"))?
        .to_string();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.trim())
        .unwrap_or("");
    Ok(format!("{body} (HTTP {status})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_file_round_trips_and_is_removed_on_drop() {
        let dir = tempfile::tempdir().expect("temp dir");
        let me = RunningServer {
            pid: std::process::id() as i32,
            node_id: "n1".into(),
            http: "127.0.0.1:8080".parse().ok(),
        };
        let file = PidFile::create(dir.path(), &me).expect("create");
        assert_eq!(read_pid_file(dir.path()), Some(me.clone()));
        assert!(running_server(dir.path()).is_ok());
        drop(file);
        assert_eq!(read_pid_file(dir.path()), None);
        let err = running_server(dir.path()).unwrap_err().to_string();
        assert!(err.contains("no server is running"), "{err}");
    }

    #[test]
    fn a_live_server_keeps_its_data_dir() {
        let dir = tempfile::tempdir().expect("temp dir");
        // pid 1 is always alive.
        let other = RunningServer {
            pid: 1,
            node_id: "other".into(),
            http: None,
        };
        std::fs::write(dir.path().join(PID_FILE), other.render()).expect("write");
        let me = RunningServer {
            pid: std::process::id() as i32,
            node_id: "me".into(),
            http: None,
        };
        let err = PidFile::create(dir.path(), &me).err().expect("refused");
        assert!(err.to_string().contains("pid 1"), "{err}");
    }

    #[test]
    fn an_exited_unreaped_child_is_not_alive() {
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id() as i32;
        let deadline = Instant::now() + Duration::from_secs(10);
        while process_alive(pid) {
            assert!(Instant::now() < deadline, "a zombie still counts as alive");
            std::thread::sleep(POLL);
        }
        assert!(is_zombie(pid), "not reaped yet, so still a zombie");
        let _ = child.wait();
    }

    #[test]
    fn drain_request_is_taken_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(DRAIN_REQUEST_FILE), "7").expect("write");
        assert_eq!(take_drain_request(dir.path()), Some(Duration::from_secs(7)));
        assert_eq!(take_drain_request(dir.path()), None);
    }

    #[test]
    fn reload_status_round_trips() {
        let dir = tempfile::tempdir().expect("temp dir");
        let status = ReloadStatus {
            generation: 3,
            ok: false,
            message: "f.toml:4: limits.max_connections: must be at least 1\nsecond".into(),
        };
        write_reload_status(dir.path(), &status).expect("write");
        assert_eq!(read_reload_status(dir.path()), Some(status));
    }
}
