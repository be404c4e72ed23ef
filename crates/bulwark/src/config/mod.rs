//! The configuration file: one TOML file, validated in full before anything is applied.
//!
//! Loading has two stages (like ripgrep's low/high args): [`read`] checks every key against
//! the schema and parses each value; [`Config::build`] fills in defaults, resolves paths and runs
//! the checks that span keys (duplicate listeners, cert without key, unreadable files). Every
//! problem found is reported, each with its key, line and reason.

mod read;
pub mod schema;

#[cfg(test)]
mod tests;
pub mod values;

use read::{Entry, Parsed, Values};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Environment variable naming the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "BULWARK_CONFIG";
/// Config file used when neither `--config` nor `$BULWARK_CONFIG` is given.
pub const DEFAULT_CONFIG_FILE: &str = "bulwark.toml";
/// Largest `max_message_size` we accept; beyond this a single message is a denial of service.
pub const MAX_MESSAGE_SIZE_CEILING: u64 = 1 << 30;
/// Shortest `limits.pop3_idle_timeout` (RFC 1939 §3).
pub const POP3_MIN_IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Smallest `max_message_size`: a message with a few headers must fit.
pub const MAX_MESSAGE_SIZE_FLOOR: u64 = 1 << 10;
/// Range of `limits.max_import_size`: a web upload is held in memory while it is imported.
pub const MAX_IMPORT_SIZE_FLOOR: u64 = 1 << 10;
pub const MAX_IMPORT_SIZE_CEILING: u64 = 2 << 30;

/// One thing wrong with a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `section.key` (or `hostname`, or `(file)` for syntax errors).
    pub key: String,
    /// 1-based line of the key, when the key is in the file.
    pub line: Option<usize>,
    pub message: String,
}

impl Problem {
    fn at(key: &str, line: usize, message: impl Into<String>) -> Problem {
        Problem {
            key: key.to_string(),
            line: Some(line),
            message: message.into(),
        }
    }
    fn at_entry(key: &str, entry: Option<&Entry>, message: impl Into<String>) -> Problem {
        Problem {
            key: key.to_string(),
            line: entry.map(|e| e.line),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}: {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} has {} problem(s):\n{}", problems.len(), render_problems(path, problems))]
    Invalid {
        path: String,
        problems: Vec<Problem>,
    },
}

/// One line per problem: `FILE:LINE: KEY: WHY`.
pub fn render_problems(path: &str, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| match p.line {
            Some(line) => format!("{path}:{line}: {}: {}", p.key, p.message),
            None => format!("{path}: {}: {}", p.key, p.message),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Which listener an address belongs to (names match the `[listen]` keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerName {
    Smtp,
    Submission,
    Submissions,
    Imap,
    Imaps,
    Pop3,
    Pop3s,
    ManageSieve,
    Http,
}

impl ListenerName {
    pub const ALL: [ListenerName; 9] = [
        ListenerName::Smtp,
        ListenerName::Submission,
        ListenerName::Submissions,
        ListenerName::Imap,
        ListenerName::Imaps,
        ListenerName::Pop3,
        ListenerName::Pop3s,
        ListenerName::ManageSieve,
        ListenerName::Http,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            ListenerName::Smtp => "smtp",
            ListenerName::Submission => "submission",
            ListenerName::Submissions => "submissions",
            ListenerName::Imap => "imap",
            ListenerName::Imaps => "imaps",
            ListenerName::Pop3 => "pop3",
            ListenerName::Pop3s => "pop3s",
            ListenerName::ManageSieve => "managesieve",
            ListenerName::Http => "http",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listen {
    pub smtp: Option<SocketAddr>,
    pub submission: Option<SocketAddr>,
    pub submissions: Option<SocketAddr>,
    pub imap: Option<SocketAddr>,
    pub imaps: Option<SocketAddr>,
    pub pop3: Option<SocketAddr>,
    pub pop3s: Option<SocketAddr>,
    pub managesieve: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
}

impl Listen {
    pub fn get(&self, name: ListenerName) -> Option<SocketAddr> {
        match name {
            ListenerName::Smtp => self.smtp,
            ListenerName::Submission => self.submission,
            ListenerName::Submissions => self.submissions,
            ListenerName::Imap => self.imap,
            ListenerName::Imaps => self.imaps,
            ListenerName::Pop3 => self.pop3,
            ListenerName::Pop3s => self.pop3s,
            ListenerName::ManageSieve => self.managesieve,
            ListenerName::Http => self.http,
        }
    }
    /// The configured listeners in a fixed order.
    pub fn configured(&self) -> Vec<(ListenerName, SocketAddr)> {
        ListenerName::ALL
            .iter()
            .filter_map(|n| self.get(*n).map(|a| (*n, a)))
            .collect()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dns {
    /// Empty: the system's name servers.
    pub servers: Vec<SocketAddr>,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthChecks {
    pub enabled: bool,
    pub dmarc_reject: bool,
    pub dmarc_quarantine: bool,
    pub tempfail_on_dns_error: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    pub relay: Option<String>,
    pub mx_port: u16,
    pub queue_lifetime: Duration,
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Apply recipient domains' MTA-STS policies (RFC 8461).
    pub mta_sts: bool,
    /// Extra PEM roots for verified outbound TLS (MTA-STS enforce, policy fetches).
    pub tls_ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_message_size: u64,
    /// Largest web upload (`POST /migrate/import`).
    pub max_import_size: u64,
    pub max_connections_per_ip: usize,
    pub max_connections: usize,
    /// Networks exempt from `max_connections_per_ip` (every protocol).
    pub trusted_networks: Vec<bulwark_net::IpNet>,
    pub smtp_idle_timeout: Duration,
    pub imap_idle_timeout: Duration,
    pub imap_login_timeout: Duration,
    pub pop3_idle_timeout: Duration,
    pub http_header_timeout: Duration,
    pub http_idle_timeout: Duration,
    pub max_recipients: usize,
    pub spool_max_bytes: u64,
    pub spool_max_messages: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    pub allow_plaintext_on_loopback: bool,
    pub failure_window: Duration,
    pub ip_max_failures: u32,
    pub account_delay_after: u32,
    pub account_delay: Duration,
    pub account_max_failures: u32,
    pub account_lockout: Duration,
    pub offline_cache_max_age: Duration,
}

/// How JMAP PushSubscription pushes reach the network (`[push]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub allow_private_networks: bool,
    pub ca_file: Option<PathBuf>,
}

/// Spam scoring (`[spam]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spam {
    pub enabled: bool,
    pub junk_score: u64,
    pub reject_score: Option<u64>,
    pub dnsbl: Vec<String>,
    /// clamd's Unix socket; `None`: no virus scanning.
    pub clamav: Option<PathBuf>,
    pub clamav_defer_on_error: bool,
    pub greylisting: bool,
    pub greylist_delay: Duration,
}

/// Storage quotas (`[quota]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    /// Octets an account may keep without its own limit; `None`: unlimited.
    pub default_storage: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    pub level: String,
}

/// Where accounts and mail live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreBackend {
    /// The embedded SQLite store in `data_dir` (the default).
    Embedded,
    /// A shared PostgreSQL database (`postgres://…`).
    Postgres(String),
}

impl StoreBackend {
    /// For logs and `bulwark status`: `embedded (DIR)` or the URL without its password.
    pub fn describe(&self, data_dir: &Path) -> String {
        match self {
            StoreBackend::Embedded => format!("embedded SQLite in {}", data_dir.display()),
            StoreBackend::Postgres(url) => {
                format!("PostgreSQL {}", values::redact_store_url(url))
            }
        }
    }
}

/// A validated configuration with defaults applied and paths made absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file this was read from.
    pub source: PathBuf,
    pub hostname: String,
    pub data_dir: PathBuf,
    pub store: StoreBackend,
    /// This node's name (queue lease owner); `node_id`, else derived from the machine and
    /// `data_dir`.
    pub node_id: String,
    /// How long a drain waits for sessions to end before exiting.
    pub drain_timeout: Duration,
    pub listen: Listen,
    pub tls: Tls,
    /// `[acme]`: `None` when `acme.directory` is unset (ACME off).
    pub acme: Option<bulwark_acme::AcmeSettings>,
    pub outbound: Outbound,
    pub dns: Dns,
    pub auth_checks: AuthChecks,
    pub limits: Limits,
    pub auth: Auth,
    pub push: Push,
    pub quota: Quota,
    pub spam: Spam,
    pub log: Log,
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        Config::parse(&text, path).map_err(|problems| ConfigError::Invalid {
            path: shown,
            problems,
        })
    }

    /// The data directory named by `path`, even when other keys are invalid (so the command
    /// line can find a running server to tell about a broken file).
    pub fn data_dir_of(path: &Path) -> Option<PathBuf> {
        let text = std::fs::read_to_string(path).ok()?;
        let (values, _) = read::read(&text);
        // A TOML syntax error leaves no values: then look for the line itself.
        let dir = match values.get("data_dir").map(|e| &e.value) {
            Some(Parsed::Text(dir)) => Some(dir.clone()),
            _ => None,
        }
        .or_else(|| data_dir_line(&text))
        .unwrap_or_else(|| "./bulwark-data".into());
        Some(normalize(&config_dir(path).join(dir)))
    }

    /// Validates `text` as if read from `path` (relative paths resolve against its directory).
    pub fn parse(text: &str, path: &Path) -> Result<Config, Vec<Problem>> {
        let (values, mut problems) = read::read(text);
        if problems.iter().any(|p| p.key == "(file)") {
            return Err(problems);
        }
        let base = config_dir(path);
        let config = Config::build(&values, &base, path, &mut problems);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems)
        }
    }

    fn build(values: &Values, base: &Path, source: &Path, problems: &mut Vec<Problem>) -> Config {
        let v = Lookup { values };
        let hostname = match v.text("hostname") {
            Some(h) => h,
            None => {
                if !values.contains_key("hostname") && !problems.iter().any(|p| p.key == "hostname")
                {
                    problems.push(Problem {
                        key: "hostname".into(),
                        line: None,
                        message: "missing; set the server's public name, e.g. hostname = \"mail.example.com\"".into(),
                    });
                }
                String::new()
            }
        };
        let data_dir = base.join(
            v.text("data_dir")
                .unwrap_or_else(|| "./bulwark-data".into()),
        );
        let data_dir = normalize(&data_dir);
        let store = match v.text("store") {
            Some(url) => StoreBackend::Postgres(url),
            None => StoreBackend::Embedded,
        };
        let node_id = v.text("node_id").unwrap_or_else(|| {
            let machine = values::machine_hostname().unwrap_or_else(|| hostname.clone());
            values::default_node_id(&machine, &data_dir)
        });
        let listen = Listen {
            smtp: v.addr("listen.smtp"),
            submission: v.addr("listen.submission"),
            submissions: v.addr("listen.submissions"),
            imap: v.addr("listen.imap"),
            imaps: v.addr("listen.imaps"),
            pop3: v.addr("listen.pop3"),
            pop3s: v.addr("listen.pop3s"),
            managesieve: v.addr("listen.managesieve"),
            http: v.addr("listen.http"),
        };
        let tls = Tls {
            cert: v.text("tls.cert").map(|p| normalize(&base.join(p))),
            key: v.text("tls.key").map(|p| normalize(&base.join(p))),
        };
        let acme = v
            .text("acme.directory")
            .map(|directory| bulwark_acme::AcmeSettings {
                directory,
                contact: v.hosts("acme.contact"),
                domains: {
                    let d = v.hosts("acme.domains");
                    if d.is_empty() {
                        vec![hostname.clone()]
                    } else {
                        d
                    }
                },
                challenge: v
                    .text("acme.challenge")
                    .and_then(|c| bulwark_acme::ChallengeKind::parse(&c))
                    .unwrap_or(bulwark_acme::ChallengeKind::Http01),
                renew_before: v.duration("acme.renew_before"),
                ca_file: v.text("acme.ca_file").map(|p| normalize(&base.join(p))),
            });
        let outbound = Outbound {
            relay: v.text("outbound.relay"),
            mx_port: u16::try_from(v.int("outbound.mx_port")).unwrap_or(25),
            queue_lifetime: v.duration("outbound.queue_lifetime"),
            retry_base: v.duration("outbound.retry_base"),
            retry_max: v.duration("outbound.retry_max"),
            mta_sts: v.bool("outbound.mta_sts"),
            tls_ca_file: v
                .text("outbound.tls_ca_file")
                .map(|p| normalize(&base.join(p))),
        };
        let dns = Dns {
            servers: v.addrs("dns.servers"),
            timeout: v.duration("dns.timeout"),
        };
        let auth_checks = AuthChecks {
            enabled: v.bool("auth_checks.enabled"),
            dmarc_reject: v.bool("auth_checks.dmarc_reject"),
            dmarc_quarantine: v.bool("auth_checks.dmarc_quarantine"),
            tempfail_on_dns_error: v.bool("auth_checks.tempfail_on_dns_error"),
        };
        let limits = Limits {
            max_message_size: v.int("limits.max_message_size"),
            max_import_size: v.int("limits.max_import_size"),
            max_connections_per_ip: v.int("limits.max_connections_per_ip") as usize,
            max_connections: v.int("limits.max_connections") as usize,
            trusted_networks: v.nets("limits.trusted_networks"),
            smtp_idle_timeout: v.duration("limits.smtp_idle_timeout"),
            imap_idle_timeout: v.duration("limits.imap_idle_timeout"),
            imap_login_timeout: v.duration("limits.imap_login_timeout"),
            pop3_idle_timeout: v.duration("limits.pop3_idle_timeout"),
            http_header_timeout: v.duration("limits.http_header_timeout"),
            http_idle_timeout: v.duration("limits.http_idle_timeout"),
            max_recipients: v.int("limits.max_recipients") as usize,
            spool_max_bytes: v.int("limits.spool_max_bytes"),
            spool_max_messages: v.int("limits.spool_max_messages"),
        };
        let auth = Auth {
            allow_plaintext_on_loopback: v.bool("auth.allow_plaintext_on_loopback"),
            failure_window: v.duration("auth.failure_window"),
            ip_max_failures: saturating_u32(v.int("auth.ip_max_failures")),
            account_delay_after: saturating_u32(v.int("auth.account_delay_after")),
            account_delay: v.duration("auth.account_delay"),
            account_max_failures: saturating_u32(v.int("auth.account_max_failures")),
            account_lockout: v.duration("auth.account_lockout"),
            offline_cache_max_age: v.duration("auth.offline_cache_max_age"),
        };
        let push = Push {
            allow_private_networks: v.bool("push.allow_private_networks"),
            ca_file: v.text("push.ca_file").map(|p| normalize(&base.join(p))),
        };
        let quota = Quota {
            default_storage: Some(v.int("quota.default_storage")).filter(|b| *b > 0),
        };
        let spam = Spam {
            enabled: v.bool("spam.enabled"),
            junk_score: v.int("spam.junk_score"),
            reject_score: match v.get("spam.reject_score") {
                Some(Parsed::Int(n)) => Some(n),
                _ => None,
            },
            dnsbl: v.hosts("spam.dnsbl"),
            clamav: v.text("spam.clamav").map(|p| normalize(&base.join(p))),
            clamav_defer_on_error: v.bool("spam.clamav_defer_on_error"),
            greylisting: v.bool("spam.greylisting"),
            greylist_delay: v.duration("spam.greylist_delay"),
        };
        let log = Log {
            level: v.text("log.level").unwrap_or_else(|| "info".into()),
        };
        let config = Config {
            source: source.to_path_buf(),
            hostname,
            data_dir,
            store,
            node_id,
            drain_timeout: v.duration("drain_timeout"),
            listen,
            tls,
            acme,
            outbound,
            dns,
            auth_checks,
            limits,
            auth,
            push,
            quota,
            spam,
            log,
        };
        config.check_across_keys(values, problems);
        config
    }

    /// Checks that involve several keys or the file system.
    fn check_across_keys(&self, values: &Values, problems: &mut Vec<Problem>) {
        let at = |key: &str| values.get(key);
        // Duplicate listeners: a second bind to the same address would fail at start-up.
        let mut seen: Vec<(ListenerName, SocketAddr)> = Vec::new();
        for (name, addr) in self.listen.configured() {
            let key = format!("listen.{}", name.as_str());
            if addr.port() != 0
                && let Some((other, _)) = seen.iter().find(|(_, a)| *a == addr)
            {
                let other_key = format!("listen.{}", other.as_str());
                let other_line = at(&other_key)
                    .map(|e| format!(" (line {})", e.line))
                    .unwrap_or_default();
                problems.push(Problem::at_entry(
                    &key,
                    at(&key),
                    format!("{addr} is already used by {other_key}{other_line}"),
                ));
            }
            seen.push((name, addr));
        }
        self.check_tls(values, problems);
        self.check_acme(values, problems);
        if let Some(path) = &self.outbound.tls_ca_file {
            check_ca_file("outbound.tls_ca_file", path, values, problems);
        }
        let o = &self.outbound;
        if o.retry_base > o.retry_max {
            problems.push(Problem::at_entry(
                "outbound.retry_base",
                at("outbound.retry_base").or(at("outbound.retry_max")),
                format!(
                    "must not be longer than outbound.retry_max ({}s > {}s)",
                    o.retry_base.as_secs(),
                    o.retry_max.as_secs()
                ),
            ));
        }
        for key in [
            "outbound.queue_lifetime",
            "outbound.retry_base",
            "dns.timeout",
            "limits.smtp_idle_timeout",
            "limits.imap_idle_timeout",
            "limits.imap_login_timeout",
            "limits.http_header_timeout",
            "limits.http_idle_timeout",
        ] {
            if let Some(Entry {
                value: Parsed::Duration(d),
                line,
            }) = at(key)
                && d.is_zero()
            {
                problems.push(Problem::at(key, *line, "must be longer than zero"));
            }
        }
        // RFC 1939 §3: a POP3 autologout timer "MUST be of at least 10 minutes' duration".
        if self.limits.pop3_idle_timeout < POP3_MIN_IDLE_TIMEOUT {
            problems.push(Problem::at_entry(
                "limits.pop3_idle_timeout",
                at("limits.pop3_idle_timeout"),
                format!(
                    "must be at least 10m (RFC 1939 §3), not {}s",
                    self.limits.pop3_idle_timeout.as_secs()
                ),
            ));
        }
        let size = self.limits.max_message_size;
        if !(MAX_MESSAGE_SIZE_FLOOR..=MAX_MESSAGE_SIZE_CEILING).contains(&size) {
            problems.push(Problem::at_entry(
                "limits.max_message_size",
                at("limits.max_message_size"),
                format!("{size} bytes is outside the allowed range 1K..1G"),
            ));
        }
        let size = self.limits.max_import_size;
        if !(MAX_IMPORT_SIZE_FLOOR..=MAX_IMPORT_SIZE_CEILING).contains(&size) {
            problems.push(Problem::at_entry(
                "limits.max_import_size",
                at("limits.max_import_size"),
                format!("{size} bytes is outside the allowed range 1K..2G"),
            ));
        }
        if self.limits.max_connections_per_ip > self.limits.max_connections {
            problems.push(Problem::at_entry(
                "limits.max_connections_per_ip",
                at("limits.max_connections_per_ip"),
                "must not exceed limits.max_connections",
            ));
        }
        if self.data_dir.exists() && !self.data_dir.is_dir() {
            problems.push(Problem::at_entry(
                "data_dir",
                at("data_dir"),
                format!("{} exists and is not a directory", self.data_dir.display()),
            ));
        }
    }

    fn check_acme(&self, values: &Values, problems: &mut Vec<Problem>) {
        let at = |key: &str| values.get(key);
        let Some(acme) = &self.acme else {
            for key in [
                "acme.contact",
                "acme.domains",
                "acme.challenge",
                "acme.renew_before",
                "acme.ca_file",
            ] {
                if let Some(entry) = at(key) {
                    problems.push(Problem::at(
                        key,
                        entry.line,
                        "has no effect without acme.directory (ACME is off)",
                    ));
                }
            }
            return;
        };
        if self.tls.cert.is_some() || self.tls.key.is_some() {
            problems.push(Problem::at_entry(
                "acme.directory",
                at("acme.directory"),
                "ACME and [tls] cert/key are both set, so which certificate is served would be \
                 ambiguous; remove tls.cert/tls.key to let ACME manage it, or acme.directory to \
                 use your files",
            ));
        }
        if acme.renew_before.is_zero() {
            problems.push(Problem::at_entry(
                "acme.renew_before",
                at("acme.renew_before"),
                "must be longer than zero",
            ));
        }
        match acme.challenge {
            bulwark_acme::ChallengeKind::Http01 if self.listen.http.is_none() => {
                problems.push(Problem::at_entry(
                    "acme.challenge",
                    at("acme.challenge").or(at("acme.directory")),
                    "http-01 needs listen.http (and port 80 of every domain must reach it)",
                ))
            }
            bulwark_acme::ChallengeKind::TlsAlpn01
                if self.listen.imaps.is_none()
                    && self.listen.submissions.is_none()
                    && self.listen.pop3s.is_none() =>
            {
                problems.push(Problem::at_entry(
                    "acme.challenge",
                    at("acme.challenge"),
                    "tls-alpn-01 needs a TLS listener (listen.imaps, listen.submissions or \
                     listen.pop3s) that port 443 of every domain reaches",
                ))
            }
            _ => {}
        }
        if let Some(path) = &acme.ca_file {
            check_ca_file("acme.ca_file", path, values, problems);
        }
    }

    fn check_tls(&self, values: &Values, problems: &mut Vec<Problem>) {
        let at = |key: &str| values.get(key);
        match (&self.tls.cert, &self.tls.key) {
            (Some(_), None) => problems.push(Problem::at_entry(
                "tls.cert",
                at("tls.cert"),
                "tls.cert is set but tls.key is not; set both or neither",
            )),
            (None, Some(_)) => problems.push(Problem::at_entry(
                "tls.key",
                at("tls.key"),
                "tls.key is set but tls.cert is not; set both or neither",
            )),
            _ => {}
        }
        let mut readable = true;
        for (key, path) in [("tls.cert", &self.tls.cert), ("tls.key", &self.tls.key)] {
            if let Some(path) = path
                && let Err(e) = std::fs::read(path)
            {
                readable = false;
                problems.push(Problem::at_entry(
                    key,
                    at(key),
                    format!("cannot read {}: {e}", path.display()),
                ));
            }
        }
        if readable && self.tls.cert.is_some() && self.tls.key.is_some() {
            let files = bulwark_net::TlsFiles {
                cert: self.tls.cert.clone(),
                key: self.tls.key.clone(),
            };
            if let Err(e) = bulwark_net::load_tls(&files, &self.data_dir, &self.hostname) {
                problems.push(Problem::at_entry(
                    "tls.cert",
                    at("tls.cert"),
                    format!("unusable certificate or key: {e}"),
                ));
            }
        }
    }
}

/// Reads typed values with the schema's defaults for keys that are absent.
struct Lookup<'a> {
    values: &'a Values,
}

impl Lookup<'_> {
    fn default_of(&self, key: &str) -> Option<Parsed> {
        let (section, name) = key.split_once('.').unwrap_or(("", key));
        let def = schema::lookup(section, name)?;
        let text = def.default.trim_matches('"');
        if def.default.is_empty() {
            return None;
        }
        match def.kind {
            schema::Kind::Duration => values::parse_duration(text).ok().map(Parsed::Duration),
            schema::Kind::Size => values::parse_size(text).ok().map(Parsed::Int),
            schema::Kind::Count | schema::Kind::Port => text.parse().ok().map(Parsed::Int),
            schema::Kind::Bool => text.parse().ok().map(Parsed::Bool),
            _ => Some(Parsed::Text(text.to_string())),
        }
    }
    fn get(&self, key: &str) -> Option<Parsed> {
        self.values
            .get(key)
            .map(|e| e.value.clone())
            .or_else(|| self.default_of(key))
    }
    fn text(&self, key: &str) -> Option<String> {
        match self.get(key) {
            Some(Parsed::Text(t)) => Some(t),
            _ => None,
        }
    }
    fn addr(&self, key: &str) -> Option<SocketAddr> {
        match self.get(key) {
            Some(Parsed::Addr(a)) => Some(a),
            _ => None,
        }
    }
    fn addrs(&self, key: &str) -> Vec<SocketAddr> {
        match self.get(key) {
            Some(Parsed::Addrs(a)) => a,
            _ => Vec::new(),
        }
    }
    fn hosts(&self, key: &str) -> Vec<String> {
        match self.get(key) {
            Some(Parsed::Hosts(h)) => h,
            _ => Vec::new(),
        }
    }
    fn nets(&self, key: &str) -> Vec<bulwark_net::IpNet> {
        match self.get(key) {
            Some(Parsed::Nets(n)) => n,
            _ => Vec::new(),
        }
    }
    fn duration(&self, key: &str) -> Duration {
        match self.get(key) {
            Some(Parsed::Duration(d)) => d,
            _ => Duration::ZERO,
        }
    }
    fn int(&self, key: &str) -> u64 {
        match self.get(key) {
            Some(Parsed::Int(n)) => n,
            _ => 0,
        }
    }
    fn bool(&self, key: &str) -> bool {
        matches!(self.get(key), Some(Parsed::Bool(true)))
    }
}

fn saturating_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The directory relative paths in `config_file` are resolved against (absolute).
fn config_dir(config_file: &Path) -> PathBuf {
    let parent = config_file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf())
}

/// `data_dir = "…"` found line by line (for a file that is not valid TOML).
fn data_dir_line(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        if key.trim() != "data_dir" {
            return None;
        }
        let value = value.trim();
        let quote = value.chars().next().filter(|c| *c == '"' || *c == '\'')?;
        let inner = &value[1..];
        inner.find(quote).map(|end| inner[..end].to_string())
    })
}

/// Removes `.` components (`/etc/bulwark/./data` → `/etc/bulwark/data`) for readable messages.
fn normalize(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

/// A `*ca_file` key: the file must be readable and hold at least one PEM certificate.
fn check_ca_file(key: &str, path: &Path, values: &Values, problems: &mut Vec<Problem>) {
    match std::fs::read(path) {
        Err(e) => problems.push(Problem::at_entry(
            key,
            values.get(key),
            format!("cannot read {}: {e}", path.display()),
        )),
        Ok(pem) => {
            let found = rustls_pemfile::certs(&mut pem.as_slice())
                .filter(Result::is_ok)
                .count();
            if found == 0 {
                problems.push(Problem::at_entry(
                    key,
                    values.get(key),
                    format!("{} holds no PEM certificate", path.display()),
                ));
            }
        }
    }
}
