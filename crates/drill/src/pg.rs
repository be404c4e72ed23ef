//! A throwaway PostgreSQL server for one drill: Debian's binaries, a temp data dir, a free port
//! on 127.0.0.1, trust auth. Same recipe as `scripts/pg-test-server`: initdb and the server run
//! as the `postgres` user (they refuse root). Stop/start on the same port injects store outages.

use crate::DrillError;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Connections the server accepts: nodes keep pools, clients and the admin CLI add a few.
const MAX_CONNECTIONS: u32 = 300;
/// Seconds `pg_ctl` waits for start/stop.
const PG_CTL_WAIT_SECS: &str = "60";

pub struct Postgres {
    bindir: PathBuf,
    /// The temp dir (owned by postgres): `data/`, `server.log`, the socket.
    pub dir: PathBuf,
    pub port: u16,
    /// Addresses listened on besides 127.0.0.1 (the partition drill's veth link).
    extra_listen: Option<String>,
    running: bool,
}

/// The PostgreSQL server binaries (initdb, pg_ctl), newest version first.
fn find_bindir() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some((version, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, bin)| bin)
}

#[allow(unsafe_code)] // FFI: see the SAFETY comment inside
fn is_root() -> bool {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() == 0 }
}

/// Runs a server binary as the postgres user.
fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut command: Command, what: &str) -> Result<(), DrillError> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| DrillError::Setup(format!("{what}: cannot run: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(DrillError::Setup(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

impl Postgres {
    /// initdb in `base/pg` and start on a free port of 127.0.0.1 (and of `extra`, whose /24
    /// network is then trusted too).
    pub fn start_new_listening(base: &Path, extra: Option<&str>) -> Result<Postgres, DrillError> {
        let bindir = find_bindir().ok_or_else(|| {
            DrillError::Setup(
                "PostgreSQL server binaries not found under /usr/lib/postgresql \
                 (install Debian's `postgresql` package; scripts/test does)"
                    .to_string(),
            )
        })?;
        let dir = base.join("pg");
        std::fs::create_dir_all(&dir)
            .map_err(|e| DrillError::io("create the PostgreSQL dir", e))?;
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.arg("postgres:postgres").arg(&dir);
                    c
                },
                "chown the PostgreSQL dir to postgres",
            )?;
        }
        let mut initdb = as_postgres(&bindir.join("initdb"));
        initdb.arg("-D").arg(dir.join("data")).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        run(initdb, "initdb")?;
        if let Some(ip) = extra {
            // pg_hba.conf: trust the link network too (initdb's -A trust covers loopback only).
            let hba = dir.join("data").join("pg_hba.conf");
            let net = ip.rsplit_once('.').map(|(a, _)| a).unwrap_or(ip);
            let mut text =
                std::fs::read_to_string(&hba).map_err(|e| DrillError::io("read pg_hba.conf", e))?;
            text.push_str(&format!("host all all {net}.0/24 trust\n"));
            std::fs::write(&hba, text).map_err(|e| DrillError::io("write pg_hba.conf", e))?;
        }
        let mut pg = Postgres {
            bindir,
            dir,
            port: 0,
            extra_listen: extra.map(str::to_string),
            running: false,
        };
        // A port can be taken between probing and binding: try a few.
        let mut last = None;
        for _ in 0..5 {
            pg.port = crate::node::free_port()?;
            match pg.start() {
                Ok(()) => return Ok(pg),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| DrillError::Setup("PostgreSQL did not start".into())))
    }

    pub fn url(&self) -> String {
        self.url_at("127.0.0.1")
    }

    pub fn url_at(&self, ip: &str) -> String {
        format!("postgres://postgres@{ip}:{}/postgres", self.port)
    }

    /// Starts (again) on the same port and data dir.
    pub fn start(&mut self) -> Result<(), DrillError> {
        let listen = match &self.extra_listen {
            Some(ip) => format!("127.0.0.1,{ip}"),
            None => "127.0.0.1".to_string(),
        };
        let options = format!(
            "-p {} -k {} -c listen_addresses={listen} -c max_connections={MAX_CONNECTIONS} \
             -c fsync=off -c full_page_writes=off",
            self.port,
            self.dir.display()
        );
        let mut c = as_postgres(&self.bindir.join("pg_ctl"));
        c.arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-w", "-t", PG_CTL_WAIT_SECS, "-o", &options, "start"]);
        run(c, "pg_ctl start")?;
        self.running = true;
        Ok(())
    }

    /// `immediate` = like a crash (no checkpoint, crash recovery on start); else a fast stop.
    pub fn stop(&mut self, immediate: bool) -> Result<(), DrillError> {
        let mode = if immediate { "immediate" } else { "fast" };
        let mut c = as_postgres(&self.bindir.join("pg_ctl"));
        c.arg("-D").arg(self.dir.join("data")).args([
            "-m",
            mode,
            "-w",
            "-t",
            PG_CTL_WAIT_SECS,
            "stop",
        ]);
        run(c, "pg_ctl stop")?;
        self.running = false;
        Ok(())
    }

    /// Runs SQL as the superuser (fault injection: hide a table, then restore it).
    pub async fn execute(&self, sql: &str) -> Result<(), DrillError> {
        let (client, connection) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .map_err(|e| DrillError::Setup(format!("connect to PostgreSQL: {e}")))?;
        let task = tokio::spawn(connection);
        let result = client
            .batch_execute(sql)
            .await
            .map_err(|e| DrillError::Setup(format!("PostgreSQL refused `{sql}`: {e}")));
        drop(client);
        let _ = task.await;
        result
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.running {
            let _ = self.stop(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn select_one(url: &str) -> Result<i32, String> {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let row = client
            .query_one("SELECT 1", &[])
            .await
            .map_err(|e| e.to_string())?;
        Ok(row.get(0))
    }

    /// Needs Debian's PostgreSQL binaries (scripts/test installs them); skipped without.
    #[tokio::test]
    async fn postgres_stops_and_starts_again_on_the_same_port() {
        if find_bindir().is_none() {
            eprintln!("skipped: no PostgreSQL server binaries under /usr/lib/postgresql");
            return;
        }
        let base =
            std::env::temp_dir().join(format!("bulwark-drill-pgtest-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&base);
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755));
        let mut pg = match Postgres::start_new_listening(&base, None) {
            Ok(pg) => pg,
            Err(e) => panic!("PostgreSQL did not start: {e}"),
        };
        assert_eq!(select_one(&pg.url()).await, Ok(1));
        let port = pg.port;
        pg.stop(false).unwrap_or_else(|e| panic!("stop: {e}"));
        assert!(
            select_one(&pg.url()).await.is_err(),
            "answers while stopped"
        );
        pg.start().unwrap_or_else(|e| panic!("start: {e}"));
        assert_eq!(pg.port, port);
        assert_eq!(select_one(&pg.url()).await, Ok(1));
        pg.execute("CREATE TABLE t (x int); ALTER TABLE t RENAME TO u")
            .await
            .unwrap_or_else(|e| panic!("execute: {e}"));
        assert!(pg.execute("SELECT * FROM t").await.is_err());
        drop(pg);
        let _ = std::fs::remove_dir_all(&base);
    }
}
