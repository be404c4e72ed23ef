#![allow(clippy::unwrap_used, clippy::expect_used)] // test code
//! Runs the real `bulwark` binary: admin commands against a fresh data dir, `config check`,
//! and `serve` with port-0 listeners.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_bulwark");
/// How long `serve` may take to print its listener lines.
const STARTUP_DEADLINE: Duration = Duration::from_secs(30);

/// A fresh directory with a config file, removed at the end of the test.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(listen: &str) -> Setup {
        let dir = tempfile::tempdir().expect("temp dir");
        let config =
            format!("hostname = \"mx.example.test\"\ndata_dir = \"data\"\n[listen]\n{listen}");
        std::fs::write(dir.path().join("bulwark.toml"), config).expect("write config");
        Setup { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("bulwark.toml")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("--config")
            .arg(self.config())
            .args(args)
            .env_remove("BULWARK_CONFIG")
            .env_remove("RUST_LOG");
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, "")
    }

    fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn bulwark");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("wait for bulwark")
    }

    /// Runs and asserts success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        self.ok_with_stdin(args, "")
    }

    fn ok_with_stdin(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run_with_stdin(args, stdin);
        assert!(
            out.status.success(),
            "bulwark {args:?} failed: {}",
            describe(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs and asserts failure with exit code `code`; returns stderr.
    fn fails(&self, args: &[&str], stdin: &str, code: i32) -> String {
        let out = self.run_with_stdin(args, stdin);
        assert_eq!(
            out.status.code(),
            Some(code),
            "bulwark {args:?}: {}",
            describe(&out)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

fn describe(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn admin_commands_manage_domains_accounts_aliases_and_app_passwords() {
    let s = Setup::new("");
    assert_eq!(
        s.ok(&["domain", "add", "Example.Test"]),
        "added domain example.test\n"
    );
    assert_eq!(s.ok(&["domain", "list"]), "example.test\n");

    let created = s.ok_with_stdin(
        &[
            "account",
            "add",
            "alice@example.test",
            "--password-stdin",
            "--name",
            "Alice",
        ],
        "correct horse battery\n",
    );
    assert_eq!(created, "created account alice@example.test\n");
    assert_eq!(
        s.ok(&["alias", "add", "sales@example.test", "alice@example.test"]),
        "added alias sales@example.test -> alice@example.test\n"
    );
    assert_eq!(
        s.ok(&["account", "list"]),
        "alice@example.test  \"Alice\"  aliases: sales@example.test  mail: 0 bytes\n"
    );
    assert_eq!(
        s.ok(&["alias", "list"]),
        "sales@example.test -> alice@example.test\n"
    );

    let password = s.ok(&[
        "account",
        "app-password",
        "add",
        "alice@example.test",
        "--name",
        "phone",
    ]);
    let password = password.trim();
    assert_eq!(password.len(), 19, "app password {password:?}");
    assert_eq!(password.split('-').count(), 4);
    let listed = s.ok(&["account", "app-password", "list", "alice@example.test"]);
    assert!(listed.contains("phone"), "{listed}");
    assert!(
        !listed.contains(password),
        "the app password must never be listed again"
    );

    // The database holds only argon2id hashes, never the passwords themselves.
    let db = std::fs::read(s.dir.path().join("data/bulwark.db")).expect("database file");
    let db_text = String::from_utf8_lossy(&db);
    assert!(!db_text.contains("correct horse battery"));
    assert!(!db_text.contains(password));

    s.ok_with_stdin(
        &[
            "account",
            "passwd",
            "alice@example.test",
            "--password-stdin",
        ],
        "another good one\n",
    );
    assert_eq!(
        s.ok(&[
            "account",
            "app-password",
            "delete",
            "alice@example.test",
            "phone"
        ]),
        "deleted app password \"phone\" of alice@example.test\n"
    );
    assert_eq!(
        s.ok(&["alias", "delete", "sales@example.test"]),
        "deleted alias sales@example.test\n"
    );
    // Without a terminal to ask on, delete refuses unless --yes says so, and says what it
    // would remove.
    let err = s.fails(&["account", "delete", "alice@example.test"], "", 1);
    assert!(
        err.contains("--yes") && err.contains("0 messages in 6 folders"),
        "{err}"
    );
    assert!(s.ok(&["account", "list"]).starts_with("alice@example.test"));
    s.ok(&["account", "delete", "alice@example.test", "--yes"]);
    assert_eq!(s.ok(&["account", "list"]), "");
    assert_eq!(
        s.ok(&["domain", "delete", "example.test"]),
        "deleted domain example.test\n"
    );
}

#[test]
fn admin_commands_explain_what_is_wrong() {
    let s = Setup::new("");
    let err = s.fails(
        &["account", "add", "bob@nowhere.test", "--password-stdin"],
        "correct horse\n",
        1,
    );
    assert!(
        err.contains(
            "unknown domain nowhere.test; add it first with: bulwark domain add nowhere.test"
        ),
        "{err}"
    );

    s.ok(&["domain", "add", "example.test"]);
    let err = s.fails(
        &["account", "add", "bob@example.test", "--password-stdin"],
        "\n",
        1,
    );
    assert!(err.contains("the password is empty"), "{err}");
    let err = s.fails(
        &["account", "add", "bob@example.test", "--password-stdin"],
        "short\n",
        1,
    );
    assert!(err.contains("too weak"), "{err}");
    let err = s.fails(&["account", "add", "bob@example.test"], "", 1);
    assert!(
        err.contains("--password-stdin"),
        "without a TTY the error must point at --password-stdin: {err}"
    );

    s.ok_with_stdin(
        &["account", "add", "bob@example.test", "--password-stdin"],
        "correct horse\n",
    );
    let err = s.fails(
        &["account", "add", "BOB@example.test", "--password-stdin"],
        "correct horse\n",
        1,
    );
    assert!(err.contains("bob@example.test already exists"), "{err}");
    let err = s.fails(
        &["alias", "add", "info@example.test", "nobody@example.test"],
        "",
        1,
    );
    assert!(err.contains("no account nobody@example.test"), "{err}");
    let err = s.fails(&["domain", "delete", "example.test"], "", 1);
    assert!(err.contains("still has 1 account(s)"), "{err}");
    let err = s.fails(&["queue", "retry", "999"], "", 1);
    assert!(err.contains("no queued message with id 999"), "{err}");
    assert_eq!(s.ok(&["queue", "list"]), "the queue is empty\n");
    s.fails(&["account", "frobnicate"], "", 2);
}

#[test]
fn config_check_prints_ok_or_every_problem() {
    let s = Setup::new("imap = \"127.0.0.1:2143\"\n");
    assert_eq!(
        s.ok(&["config", "check", s.config().to_str().expect("utf-8 path")]),
        "ok\n"
    );

    let bad = s.dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "data_dir = \"d\"\n[listen]\nimap = \"localhost\"\n[limits]\nmax_mesage_size = \"1M\"\n",
    )
    .expect("write");
    let out = s.run(&["config", "check", bad.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(78), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let shown = bad.display();
    assert!(
        err.contains(&format!(
            "{shown}:3: listen.imap: \"localhost\" is not an IP:PORT address"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{shown}:5: limits.max_mesage_size: unknown key; did you mean `max_message_size`?"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("{shown}: hostname: missing")),
        "{err}"
    );

    // Admin commands refuse to run on an invalid config as well.
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&bad)
        .args(["domain", "list"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(78));
}

#[test]
fn config_path_comes_from_the_environment_when_no_flag_is_given() {
    let s = Setup::new("");
    let out = Command::new(BIN)
        .args(["domain", "list"])
        .env("BULWARK_CONFIG", s.config())
        .current_dir(s.dir.path())
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        s.dir.path().join("data/bulwark.db").exists(),
        "data_dir must be relative to the config file"
    );
}

/// A running `serve`, killed on drop.
struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `serve` and collects its "listening: NAME ADDR" lines.
fn start_server(s: &Setup, expected: usize) -> (Server, Vec<(String, SocketAddr)>) {
    let mut child = s
        .command(&["serve"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let stdout = child.stdout.take().expect("stdout");
    let server = Server { child };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + STARTUP_DEADLINE;
    let mut listeners = Vec::new();
    while listeners.len() < expected {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("serve printed its listening lines in time");
        let rest = line
            .strip_prefix("listening: ")
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        let (name, addr) = rest.split_once(' ').expect("NAME ADDR");
        listeners.push((name.to_string(), addr.parse().expect("socket address")));
    }
    (server, listeners)
}

#[test]
fn serve_binds_port_zero_listeners_and_prints_the_real_ports() {
    let s = Setup::new(
        "smtp = \"127.0.0.1:0\"\nsubmission = \"127.0.0.1:0\"\nimap = \"127.0.0.1:0\"\nimaps = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\n",
    );
    let (server, listeners) = start_server(&s, 5);
    let names: Vec<&str> = listeners.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["smtp", "submission", "imap", "imaps", "http"]);
    for (name, addr) in &listeners {
        assert_ne!(addr.port(), 0, "{name} must print the port actually bound");
        std::net::TcpStream::connect_timeout(addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{name} at {addr} does not accept connections: {e}"));
    }
    let http = listeners
        .iter()
        .find(|(n, _)| n == "http")
        .map(|(_, a)| *a)
        .expect("http listener");
    assert!(
        http_get(http, "/healthz").starts_with("HTTP/1.1 200"),
        "healthz"
    );
    assert!(
        http_get(http, "/readyz").starts_with("HTTP/1.1 200"),
        "readyz"
    );
    assert!(
        s.dir.path().join("data/tls/self-signed-cert.pem").exists(),
        "self-signed certificate kept in data_dir"
    );
    drop(server);
}

#[test]
fn serve_stops_cleanly_on_sigterm() {
    let s = Setup::new("imap = \"127.0.0.1:0\"\n");
    let (mut server, _) = start_server(&s, 1);
    let pid = server.child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let deadline = Instant::now() + STARTUP_DEADLINE;
    let status = loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "serve did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
}

#[test]
fn serve_names_the_listener_whose_port_is_taken() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let s = Setup::new(&format!(
        "imap = \"127.0.0.1:0\"\nsubmission = \"{addr}\"\n"
    ));
    let out = s.run(&["serve"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "cannot listen on {addr} for submission (listen.submission in the config)"
        )),
        "{err}"
    );
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    use std::io::Read;
    let mut stream =
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect http");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("write request");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}
