//! Config reload (SIGHUP, `bulwark config reload`): validate the file in full, apply what can
//! change while running, and name the keys that only a restart applies (their old values stay).

use crate::config::{Config, ConfigError};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::Path;
use std::sync::{Arc, RwLock};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Changes the log filter of the running process.
pub type LogHandle = tracing_subscriber::reload::Handle<EnvFilter, tracing_subscriber::Registry>;

/// Logs go to standard error; `RUST_LOG` wins over `[log] level` (and then reload leaves the
/// filter alone). Returns the handle to change `[log] level` later.
pub fn init_logging(level: &str) -> Option<LogHandle> {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init()
        .ok()?;
    std::env::var_os("RUST_LOG").is_none().then_some(handle)
}

/// The server certificate, swappable while connections are served: new handshakes use the
/// latest one.
#[derive(Debug)]
pub struct ReloadableCert {
    current: RwLock<Arc<dyn ResolvesServerCert>>,
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        match self.current.read() {
            Ok(r) => r.resolve(hello),
            Err(poisoned) => poisoned.into_inner().resolve(hello),
        }
    }
}

/// One certificate for every handshake.
#[derive(Debug)]
struct Single(Arc<CertifiedKey>);

impl ResolvesServerCert for Single {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

impl ReloadableCert {
    /// Loads the config's certificate (or the generated self-signed one); returns the
    /// resolver and a TLS server config that always asks it.
    pub fn load(
        config: &Config,
    ) -> anyhow::Result<(Arc<ReloadableCert>, Arc<rustls::ServerConfig>)> {
        let loaded = load_server_config(config)?;
        let cert = Arc::new(ReloadableCert {
            current: RwLock::new(loaded.cert_resolver.clone()),
        });
        let mut server = (*loaded).clone();
        server.cert_resolver = cert.clone();
        Ok((cert, Arc::new(server)))
    }

    /// Serves `key` (an ACME certificate) to new handshakes; connections open keep theirs.
    pub fn install(&self, key: Arc<CertifiedKey>) {
        let single: Arc<dyn ResolvesServerCert> = Arc::new(Single(key));
        match self.current.write() {
            Ok(mut c) => *c = single,
            Err(poisoned) => *poisoned.into_inner() = single,
        }
    }

    /// Loads the config's certificate files and uses them for new handshakes.
    pub fn replace(&self, config: &Config) -> anyhow::Result<()> {
        let loaded = load_server_config(config)?;
        match self.current.write() {
            Ok(mut c) => *c = loaded.cert_resolver.clone(),
            Err(poisoned) => *poisoned.into_inner() = loaded.cert_resolver.clone(),
        }
        Ok(())
    }
}

fn load_server_config(config: &Config) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let files = bulwark_net::TlsFiles {
        cert: config.tls.cert.clone(),
        key: config.tls.key.clone(),
    };
    bulwark_net::load_tls(&files, &config.data_dir, &config.hostname)
        .map_err(|e| anyhow::anyhow!("cannot set up TLS: {e}"))
}

/// Which changed keys apply live and which wait for a restart.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    pub live: Vec<&'static str>,
    pub restart: Vec<&'static str>,
}

/// Compares two valid configs key group by key group.
pub fn diff(old: &Config, new: &Config) -> ConfigDiff {
    let mut d = ConfigDiff::default();
    let mut check = |changed: bool, key: &'static str, live: bool| {
        if changed {
            if live {
                d.live.push(key);
            } else {
                d.restart.push(key);
            }
        }
    };
    check(old.log != new.log, "log.level", true);
    check(old.limits != new.limits, "limits", false);
    check(old.auth != new.auth, "auth", false);
    check(old.outbound != new.outbound, "outbound", true);
    check(old.tls != new.tls, "tls", true);
    check(
        old.drain_timeout != new.drain_timeout,
        "drain_timeout",
        true,
    );
    check(old.dns != new.dns, "dns", false);
    check(old.quota != new.quota, "quota", false);
    check(old.spam != new.spam, "spam", false);
    check(old.auth_checks != new.auth_checks, "auth_checks", false);
    check(old.listen != new.listen, "listen", false);
    check(old.acme != new.acme, "acme", false);
    check(old.store != new.store, "store", false);
    check(old.data_dir != new.data_dir, "data_dir", false);
    check(old.hostname != new.hostname, "hostname", false);
    check(old.node_id != new.node_id, "node_id", false);
    d
}

/// `new` with the keys that need a restart set back to `running`'s values.
pub fn keep_restart_keys(running: &Config, mut new: Config) -> Config {
    new.limits = running.limits.clone();
    new.auth = running.auth.clone();
    new.listen = running.listen.clone();
    new.acme = running.acme.clone();
    new.dns = running.dns.clone();
    new.quota = running.quota.clone();
    new.spam = running.spam.clone();
    new.auth_checks = running.auth_checks.clone();
    new.store = running.store.clone();
    new.data_dir = running.data_dir.clone();
    new.hostname = running.hostname.clone();
    new.node_id = running.node_id.clone();
    new
}

/// The outcome of reading the config file again.
pub enum Reloaded {
    /// Valid: the config to run with now, and a sentence for the operator.
    Applied {
        config: Box<Config>,
        message: String,
    },
    /// Invalid: every problem as `FILE:LINE: KEY: WHY` (as `bulwark config check` prints).
    Refused { message: String },
}

/// Reads `path` and decides; `node_override` is `--node-id` (it wins over the file).
/// Applying is the caller's job.
pub fn reread(path: &Path, running: &Config, node_override: Option<&str>) -> Reloaded {
    let mut new = match Config::load(path) {
        Ok(c) => c,
        Err(e @ ConfigError::Invalid { .. }) | Err(e @ ConfigError::Read { .. }) => {
            return Reloaded::Refused {
                message: format!("{e}\nconfig not applied; still running on the last good one"),
            };
        }
    };
    if let Some(id) = node_override {
        new.node_id = id.to_string();
    }
    let d = diff(running, &new);
    let config = keep_restart_keys(running, new);
    let mut message = if d.live.is_empty() && d.restart.is_empty() {
        "config reloaded: nothing changed".to_string()
    } else if d.live.is_empty() {
        "config reloaded: nothing applied live".to_string()
    } else {
        format!("config reloaded: applied {}", d.live.join(", "))
    };
    if !d.restart.is_empty() {
        message.push_str(&format!(
            "\nchanged but needs a restart (old values kept until then): {}",
            d.restart.join(", ")
        ));
    }
    Reloaded::Applied {
        config: Box::new(config),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, dir: &Path) -> Config {
        Config::parse(text, &dir.join("bulwark.toml")).expect("valid")
    }

    #[test]
    fn diff_splits_live_keys_from_restart_keys() {
        let dir = tempfile::tempdir().expect("temp dir");
        let old = parse(
            "hostname = \"a.test\"\n[listen]\nsmtp = \"127.0.0.1:0\"\n",
            dir.path(),
        );
        let new = parse(
            "hostname = \"a.test\"\ndrain_timeout = \"5s\"\n[listen]\nsmtp = \"127.0.0.1:2525\"\n[log]\nlevel = \"debug\"\n[outbound]\nretry_base = \"10s\"\n",
            dir.path(),
        );
        let d = diff(&old, &new);
        assert_eq!(d.live, vec!["log.level", "outbound", "drain_timeout"]);
        assert_eq!(d.restart, vec!["listen"]);
        let kept = keep_restart_keys(&old, new);
        assert_eq!(
            kept.listen, old.listen,
            "listen addresses wait for a restart"
        );
        assert_eq!(kept.log.level, "debug");
        assert_eq!(kept.drain_timeout, std::time::Duration::from_secs(5));
    }

    #[test]
    fn reread_refuses_an_invalid_file_with_file_and_line() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("bulwark.toml");
        std::fs::write(&path, "hostname = \"a.test\"\n").expect("write");
        let running = Config::load(&path).expect("valid");
        std::fs::write(
            &path,
            "hostname = \"a.test\"\n[limits]\nmax_connections = 0\n",
        )
        .expect("write");
        match reread(&path, &running, None) {
            Reloaded::Refused { message } => {
                let expected = format!("{}:3: limits.max_connections", path.display());
                assert!(message.contains(&expected), "{message}");
                assert!(message.contains("last good"), "{message}");
            }
            Reloaded::Applied { .. } => panic!("an invalid file must be refused"),
        }
        std::fs::write(&path, "hostname = \"a.test\"\n[log]\nlevel = \"warn\"\n").expect("write");
        match reread(&path, &running, None) {
            Reloaded::Applied { config, message } => {
                assert_eq!(config.log.level, "warn");
                assert!(message.contains("applied log.level"), "{message}");
            }
            Reloaded::Refused { message } => panic!("valid file refused: {message}"),
        }
    }
}
