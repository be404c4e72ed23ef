//! Table tests: each bad config yields exactly the expected key, line and message.

use super::*;

const CONFIG_PATH: &str = "/etc/bulwark/bulwark.toml";

/// `(key, line, message)` of each problem.
type Found = Vec<(String, Option<usize>, String)>;

fn problems_of(text: &str) -> Found {
    match Config::parse(text, Path::new(CONFIG_PATH)) {
        Ok(_) => Vec::new(),
        Err(problems) => problems
            .into_iter()
            .map(|p| (p.key, p.line, p.message))
            .collect(),
    }
}

fn one(key: &str, line: Option<usize>, message: &str) -> Found {
    vec![(key.to_string(), line, message.to_string())]
}

#[test]
fn each_bad_config_names_key_line_and_reason() {
    let cases: Vec<(&str, String, Found)> = vec![
        (
            "typo in a key gets a suggestion",
            "hostname = \"mx.example.test\"\n[limits]\nmax_mesage_size = \"50M\"\n".into(),
            one("limits.max_mesage_size", Some(3), "unknown key; did you mean `max_message_size`?"),
        ),
        (
            "key in the wrong section names the right one",
            "hostname = \"mx.example.test\"\n[listen]\nrelay = \"127.0.0.1:2600\"\n".into(),
            one("listen.relay", Some(3), "unknown key; `relay` belongs in [outbound]"),
        ),
        (
            "top-level key inside a section",
            "[log]\nhostname = \"mx.example.test\"\n".into(),
            vec![
                ("log.hostname".into(), Some(2), "unknown key; `hostname` belongs at the top level, before any [section]".into()),
                ("hostname".into(), None, "missing; set the server's public name, e.g. hostname = \"mail.example.com\"".into()),
            ],
        ),
        (
            "unknown section gets a suggestion",
            "hostname = \"mx.example.test\"\n\n[limts]\nmax_recipients = 10\n".into(),
            one("limts", Some(3), "unknown section; did you mean [limits]?"),
        ),
        (
            "unknown key with nothing close",
            "hostname = \"mx.example.test\"\nzzz = 1\n".into(),
            one("zzz", Some(2), "unknown key"),
        ),
        (
            "string where an integer belongs",
            "hostname = \"mx.example.test\"\n[limits]\nmax_connections = \"many\"\n".into(),
            one("limits.max_connections", Some(3), "expected a positive integer, found a string"),
        ),
        (
            "zero count",
            "hostname = \"mx.example.test\"\n[limits]\nmax_recipients = 0\n".into(),
            one("limits.max_recipients", Some(3), "must be at least 1, found 0"),
        ),
        (
            "integer where a boolean belongs",
            "hostname = \"mx.example.test\"\n[auth]\nallow_plaintext_on_loopback = 1\n".into(),
            one("auth.allow_plaintext_on_loopback", Some(3), "expected true or false, found an integer"),
        ),
        (
            "section given as a value",
            "hostname = \"mx.example.test\"\nlisten = \"127.0.0.1:25\"\n".into(),
            one("listen", Some(2), "expected a table [listen], found a string"),
        ),
        (
            "host name instead of an IP in a listener",
            "hostname = \"mx.example.test\"\n[listen]\nsmtp = \"localhost:25\"\n".into(),
            one(
                "listen.smtp",
                Some(3),
                "\"localhost:25\" is not an IP:PORT address (for example \"127.0.0.1:2525\" or \"[::]:993\")",
            ),
        ),
        (
            "bad relay",
            "hostname = \"mx.example.test\"\n[outbound]\nrelay = \"smtp example\"\n".into(),
            one("outbound.relay", Some(3), "\"smtp example\" is not a HOST[:PORT] address (for example \"smtp.example.net:587\")"),
        ),
        (
            "a DNS server that is not IP:PORT",
            "hostname = \"mx.example.test\"\n[dns]\nservers = [\"127.0.0.1:53\", \"ns.example\"]\n".into(),
            one("dns.servers", Some(3), "\"ns.example\" is not an IP:PORT address (for example \"127.0.0.1:2525\" or \"[::]:993\")"),
        ),
        (
            "a DNS server list that is a string",
            "hostname = \"mx.example.test\"\n[dns]\nservers = \"127.0.0.1:53\"\n".into(),
            one("dns.servers", Some(3), "expected a list of addresses like [\"127.0.0.1:53\"], found a string"),
        ),
        (
            "a port out of range",
            "hostname = \"mx.example.test\"\n[outbound]\nmx_port = 70000\n".into(),
            one("outbound.mx_port", Some(3), "70000 is not a port (1-65535)"),
        ),
        (
            "bad duration",
            "hostname = \"mx.example.test\"\n[outbound]\nqueue_lifetime = \"5 fortnights\"\n".into(),
            one(
                "outbound.queue_lifetime",
                Some(3),
                "\"5 fortnights\" is not a duration; use a number with a unit: \"30s\", \"5m\", \"4h\", \"5d\"",
            ),
        ),
        (
            "zero duration",
            "hostname = \"mx.example.test\"\n[limits]\nsmtp_idle_timeout = 0\n".into(),
            one("limits.smtp_idle_timeout", Some(3), "must be longer than zero"),
        ),
        (
            "pop3 autologout shorter than RFC 1939 allows",
            "hostname = \"mx.example.test\"\n[limits]\npop3_idle_timeout = \"5m\"\n".into(),
            one("limits.pop3_idle_timeout", Some(3), "must be at least 10m (RFC 1939 §3), not 300s"),
        ),
        (
            "duplicate pop3 listen addresses",
            "hostname = \"mx.example.test\"\n[listen]\npop3 = \"127.0.0.1:2110\"\npop3s = \"127.0.0.1:2110\"\n".into(),
            one("listen.pop3s", Some(4), "127.0.0.1:2110 is already used by listen.pop3 (line 3)"),
        ),
        (
            "retry base longer than retry max",
            "hostname = \"mx.example.test\"\n[outbound]\nretry_base = \"2h\"\nretry_max = \"1h\"\n".into(),
            one("outbound.retry_base", Some(3), "must not be longer than outbound.retry_max (7200s > 3600s)"),
        ),
        (
            "bad size",
            "hostname = \"mx.example.test\"\n[limits]\nmax_message_size = \"50X\"\n".into(),
            one(
                "limits.max_message_size",
                Some(3),
                "\"50X\" is not a size; use a number with an optional unit: \"512K\", \"50M\", \"1G\"",
            ),
        ),
        (
            "size out of range",
            "hostname = \"mx.example.test\"\n[limits]\nmax_message_size = \"2G\"\n".into(),
            one("limits.max_message_size", Some(3), "2147483648 bytes is outside the allowed range 1K..1G"),
        ),
        (
            "web upload size out of range",
            "hostname = \"mx.example.test\"\n[limits]\nmax_import_size = \"3G\"\n".into(),
            one("limits.max_import_size", Some(3), "3221225472 bytes is outside the allowed range 1K..2G"),
        ),
        (
            "missing hostname",
            "data_dir = \"data\"\n".into(),
            one("hostname", None, "missing; set the server's public name, e.g. hostname = \"mail.example.com\""),
        ),
        (
            "invalid hostname",
            "hostname = \"mail_server..example\"\n".into(),
            one("hostname", Some(1), "\"mail_server..example\" is not a valid host name (letters, digits and hyphens between dots)"),
        ),
        (
            "duplicate listen addresses",
            "hostname = \"mx.example.test\"\n[listen]\nimap = \"127.0.0.1:2143\"\nimaps = \"127.0.0.1:2143\"\n".into(),
            one("listen.imaps", Some(4), "127.0.0.1:2143 is already used by listen.imap (line 3)"),
        ),
        (
            "cert without key",
            "hostname = \"mx.example.test\"\n[tls]\ncert = \"/nonexistent/bulwark-test/cert.pem\"\n".into(),
            vec![
                ("tls.cert".into(), Some(3), "tls.cert is set but tls.key is not; set both or neither".into()),
                (
                    "tls.cert".into(),
                    Some(3),
                    "cannot read /nonexistent/bulwark-test/cert.pem: No such file or directory (os error 2)".into(),
                ),
            ],
        ),
        (
            "log level typo",
            "hostname = \"mx.example.test\"\n[log]\nlevel = \"infoo\"\n".into(),
            one("log.level", Some(3), "\"infoo\" is not a log level; did you mean \"info\"?"),
        ),
        (
            "TOML syntax error stops at the first problem",
            "hostname = \"mx.example.test\"\n[listen\nsmtp = 1\n".into(),
            vec![("(file)".into(), Some(2), String::new())],
        ),
    ];
    for (name, text, expected) in cases {
        let mut got = problems_of(&text);
        if name.starts_with("TOML syntax") {
            // The parser's own wording may change; key and line are ours.
            assert!(
                got[0].2.starts_with("TOML syntax error: "),
                "{name}: {got:?}"
            );
            got[0].2.clear();
        }
        assert_eq!(got, expected, "case: {name}");
    }
}

#[test]
fn all_problems_are_reported_at_once() {
    let text = "data_dir = 5\n[listen]\nsmtp = \"nope\"\nimap = \"127.0.0.1:99999\"\n[limits]\nmax_message_size = \"lots\"\nbogus = true\n";
    let keys: Vec<String> = problems_of(text).into_iter().map(|(k, _, _)| k).collect();
    assert_eq!(
        keys,
        [
            "data_dir",
            "listen.smtp",
            "listen.imap",
            "limits.max_message_size",
            "limits.bogus",
            "hostname"
        ]
    );
}

#[test]
fn unreadable_key_file_is_named_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, "not a certificate").unwrap();
    let text = format!(
        "hostname = \"mx.example.test\"\n[tls]\ncert = \"{}\"\nkey = \"missing-key.pem\"\n",
        cert.display()
    );
    let config_path = dir.path().join("bulwark.toml");
    let problems = Config::parse(&text, &config_path).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].key, "tls.key");
    assert_eq!(problems[0].line, Some(4));
    let expected_path = dir.path().join("missing-key.pem");
    assert_eq!(
        problems[0].message,
        format!(
            "cannot read {}: No such file or directory (os error 2)",
            expected_path.display()
        )
    );
}

#[test]
fn garbage_certificate_is_rejected_on_the_cert_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
    std::fs::write(dir.path().join("key.pem"), "not a key").unwrap();
    let text = "hostname = \"mx.example.test\"\n[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n";
    let problems = Config::parse(text, &dir.path().join("bulwark.toml")).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(
        (problems[0].key.as_str(), problems[0].line),
        ("tls.cert", Some(3))
    );
    assert!(
        problems[0]
            .message
            .starts_with("unusable certificate or key: "),
        "{}",
        problems[0].message
    );
}

#[test]
fn minimal_config_gets_documented_defaults() {
    let config = Config::parse("hostname = \"MX.Example.Test\"\n", Path::new(CONFIG_PATH)).unwrap();
    assert_eq!(config.hostname, "mx.example.test");
    assert_eq!(config.data_dir, PathBuf::from("/etc/bulwark/bulwark-data"));
    assert_eq!(config.listen, Listen::default());
    assert_eq!(config.outbound.relay, None);
    assert_eq!(
        config.outbound.queue_lifetime,
        Duration::from_secs(5 * 86_400)
    );
    assert_eq!(config.outbound.retry_base, Duration::from_secs(60));
    assert_eq!(config.outbound.retry_max, Duration::from_secs(4 * 3600));
    assert_eq!(config.limits.max_message_size, 50 << 20);
    assert_eq!(config.limits.max_import_size, 256 << 20);
    assert_eq!(config.limits.max_connections_per_ip, 20);
    assert_eq!(config.limits.max_connections, 1000);
    assert_eq!(config.limits.smtp_idle_timeout, Duration::from_secs(300));
    assert_eq!(config.limits.imap_idle_timeout, Duration::from_secs(1800));
    assert_eq!(config.limits.http_header_timeout, Duration::from_secs(30));
    assert_eq!(config.limits.http_idle_timeout, Duration::from_secs(300));
    assert_eq!(config.limits.max_recipients, 100);
    assert!(!config.auth.allow_plaintext_on_loopback);
    assert_eq!(config.auth.ip_max_failures, 10);
    assert_eq!(config.auth.account_lockout, Duration::from_secs(60));
    assert_eq!(config.log.level, "info");
}

#[test]
fn full_config_is_read_and_paths_resolve_against_the_config_directory() {
    let text = r#"
hostname = "mail.example.test"
data_dir = "./data"
[listen]
smtp = "127.0.0.1:2525"
submission = "127.0.0.1:2587"
submissions = "127.0.0.1:2465"
imap = "127.0.0.1:0"
imaps = "127.0.0.1:0"
http = "[::1]:8080"
[outbound]
relay = "127.0.0.1:2600"
queue_lifetime = 3600
retry_base = "10s"
retry_max = "10m"
[limits]
max_message_size = 1048576
max_connections_per_ip = 5
max_connections = 50
smtp_idle_timeout = "6m"
imap_idle_timeout = "31m"
max_recipients = 200
[auth]
allow_plaintext_on_loopback = true
failure_window = "5m"
ip_max_failures = 3
account_delay_after = 2
account_delay = "1s"
account_max_failures = 6
account_lockout = "30s"
[log]
level = "debug,bulwark_smtp=trace"
"#;
    let config = Config::parse(text, Path::new("/srv/mail/bulwark.toml")).unwrap();
    assert_eq!(config.data_dir, PathBuf::from("/srv/mail/data"));
    assert_eq!(config.listen.smtp, Some("127.0.0.1:2525".parse().unwrap()));
    assert_eq!(config.listen.http, Some("[::1]:8080".parse().unwrap()));
    assert_eq!(config.listen.configured().len(), 6);
    assert_eq!(config.outbound.relay.as_deref(), Some("127.0.0.1:2600"));
    assert_eq!(config.outbound.queue_lifetime, Duration::from_secs(3600));
    assert_eq!(config.limits.max_message_size, 1 << 20);
    assert_eq!(config.limits.max_recipients, 200);
    assert!(config.auth.allow_plaintext_on_loopback);
    assert_eq!(config.auth.account_max_failures, 6);
    assert_eq!(config.log.level, "debug,bulwark_smtp=trace");
}

#[test]
fn port_zero_listeners_may_share_an_address() {
    let text = "hostname = \"mx.example.test\"\n[listen]\nimap = \"127.0.0.1:0\"\nimaps = \"127.0.0.1:0\"\n";
    assert_eq!(problems_of(text), vec![]);
}

#[test]
fn inline_and_dotted_tables_are_checked_like_sections() {
    let text = "hostname = \"mx.example.test\"\nlisten = { smtp = \"127.0.0.1:25\", smpt = \"x\" }\nlimits.max_recipients = \"ten\"\n";
    let got = problems_of(text);
    assert_eq!(
        got,
        vec![
            (
                "listen.smpt".to_string(),
                Some(2),
                "unknown key; did you mean `smtp`?".to_string()
            ),
            (
                "limits.max_recipients".to_string(),
                Some(3),
                "expected a positive integer, found a string".to_string()
            ),
        ]
    );
}

fn repo_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

#[test]
fn docs_config_md_contains_the_generated_key_reference() {
    let docs = repo_file("docs/config.md");
    assert!(
        docs.contains(&schema::reference_markdown()),
        "docs/config.md is out of date: paste the output of `bulwark config reference` into it"
    );
}

#[test]
fn example_config_mentions_every_key_and_is_valid() {
    let example = repo_file("bulwark.example.toml");
    for key in schema::KEYS {
        assert!(
            example.contains(&format!("{} =", key.name)),
            "bulwark.example.toml lacks {}",
            key.path()
        );
    }
    // Commented-out keys are documentation; the file as shipped must validate.
    let problems = Config::parse(&example, Path::new("/tmp/bulwark-example/bulwark.toml"))
        .err()
        .unwrap_or_default();
    assert_eq!(problems, vec![]);
}

#[test]
fn data_dir_is_found_even_in_a_broken_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bulwark.toml");
    std::fs::write(
        &path,
        "hostname = \"a.test\"\ndata_dir = \"/srv/mail\"\n[limits]\n[limits]\n",
    )
    .expect("write");
    assert_eq!(Config::data_dir_of(&path), Some(PathBuf::from("/srv/mail")));
    std::fs::write(
        &path,
        "hostname = \"a.test\"\ndata_dir = 'rel'\nbad = = 1\n",
    )
    .expect("write");
    assert_eq!(Config::data_dir_of(&path), Some(dir.path().join("rel")));
}

#[test]
fn store_node_id_and_drain_timeout_are_read_and_checked() {
    let path = Path::new("/tmp/x/bulwark.toml");
    let c = Config::parse(
        "store = \"postgres://u@db.test:5432/mail\"\nnode_id = \"mail-1\"\ndrain_timeout = \"7s\"\nhostname = \"a.test\"\n",
        path,
    )
    .expect("valid");
    assert_eq!(
        c.store,
        StoreBackend::Postgres("postgres://u@db.test:5432/mail".into())
    );
    assert_eq!(c.node_id, "mail-1");
    assert_eq!(c.drain_timeout, Duration::from_secs(7));
    let defaults = Config::parse("hostname = \"a.test\"\n", path).expect("valid");
    assert_eq!(defaults.store, StoreBackend::Embedded);
    assert_eq!(defaults.drain_timeout, Duration::from_secs(30));
    assert!(
        values::check_node_id(&defaults.node_id).is_ok(),
        "{}",
        defaults.node_id
    );
    let problems = Config::parse(
        "hostname = \"a.test\"\nstore = \"mysql://u@h/db\"\nnode_id = \"a b\"\n",
        path,
    )
    .expect_err("invalid");
    let keys: Vec<_> = problems.iter().map(|p| (p.key.as_str(), p.line)).collect();
    assert_eq!(keys, vec![("store", Some(2)), ("node_id", Some(3))]);
}

#[test]
fn dns_and_auth_checks_sections() {
    let c = Config::parse(
        "hostname = \"mx.example.test\"\n[dns]\nservers = [\"127.0.0.1:5353\", \"[::1]:53\"]\ntimeout = \"2s\"\n[auth_checks]\ntempfail_on_dns_error = true\n[outbound]\nmx_port = 2525\n",
        Path::new(CONFIG_PATH),
    )
    .expect("valid");
    assert_eq!(c.dns.servers.len(), 2);
    assert_eq!(c.dns.timeout, Duration::from_secs(2));
    assert!(
        c.auth_checks.enabled && c.auth_checks.dmarc_reject && c.auth_checks.tempfail_on_dns_error
    );
    assert_eq!(c.outbound.mx_port, 2525);
    let d =
        Config::parse("hostname = \"mx.example.test\"\n", Path::new(CONFIG_PATH)).expect("valid");
    assert!(d.dns.servers.is_empty(), "the system's by default");
    assert_eq!(d.dns.timeout, Duration::from_secs(5));
    assert_eq!(d.outbound.mx_port, 25);
    assert!(!d.auth_checks.tempfail_on_dns_error);
}

#[test]
fn trusted_networks_parse_cidr_and_bare_addresses_and_name_a_bad_one() {
    let text = "hostname = \"mx.example.test\"\n[limits]\n\
                trusted_networks = [\"10.1.2.3/8\", \"2001:db8::/32\", \"192.0.2.7\"]\n";
    let config = Config::parse(text, Path::new(CONFIG_PATH)).unwrap();
    let nets: Vec<String> = config
        .limits
        .trusted_networks
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(nets, ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7/32"]);
    let found = problems_of(
        "hostname = \"mx.example.test\"\n[limits]\ntrusted_networks = [\"10.0.0.0/33\"]\n",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "limits.trusted_networks");
    assert_eq!(found[0].1, Some(3));
    assert!(found[0].2.contains("10.0.0.0/33"), "{found:?}");
}

#[test]
fn acme_settings_are_read_and_each_bad_one_is_named() {
    let base = "hostname = \"mx.example.test\"\ndata_dir = \"/tmp/b\"\n[listen]\nhttp = \"127.0.0.1:8080\"\nimaps = \"127.0.0.1:993\"\n";
    let good = format!(
        "{base}[acme]\ndirectory = \"https://acme.example.test/dir\"\ncontact = [\"mailto:pm@example.test\"]\nchallenge = \"tls-alpn-01\"\nrenew_before = \"20d\"\n"
    );
    let c = Config::parse(&good, Path::new(CONFIG_PATH)).expect("valid");
    let acme = c.acme.expect("acme on");
    assert_eq!(
        acme.domains,
        vec!["mx.example.test".to_string()],
        "default: hostname"
    );
    assert_eq!(acme.challenge, bulwark_acme::ChallengeKind::TlsAlpn01);
    assert_eq!(acme.renew_before, Duration::from_secs(20 * 86400));
    let off = Config::parse(base, Path::new(CONFIG_PATH)).expect("valid");
    assert!(off.acme.is_none());

    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "plain http directory",
            format!("{base}[acme]\ndirectory = \"http://acme.example.test/dir\"\n"),
            "acme.directory",
            "must start with https://",
        ),
        (
            "contact not mailto",
            format!("{base}[acme]\ndirectory = \"https://a.test/dir\"\ncontact = [\"pm@example.test\"]\n"),
            "acme.contact",
            "must be a mailto: URL",
        ),
        (
            "unknown challenge",
            format!("{base}[acme]\ndirectory = \"https://a.test/dir\"\nchallenge = \"dns-01\"\n"),
            "acme.challenge",
            "not a supported challenge",
        ),
        (
            "settings without a directory",
            format!("{base}[acme]\nchallenge = \"http-01\"\n"),
            "acme.challenge",
            "has no effect without acme.directory",
        ),
        (
            "ACME and certificate files together",
            format!("{base}[tls]\ncert = \"/etc/c.pem\"\nkey = \"/etc/k.pem\"\n[acme]\ndirectory = \"https://a.test/dir\"\n"),
            "acme.directory",
            "ambiguous",
        ),
        (
            "http-01 without the http listener",
            "hostname = \"mx.example.test\"\ndata_dir = \"/tmp/b\"\n[listen]\nimaps = \"127.0.0.1:993\"\n[acme]\ndirectory = \"https://a.test/dir\"\n".to_string(),
            "acme.challenge",
            "http-01 needs listen.http",
        ),
    ];
    for (what, text, key, message) in cases {
        let got = problems_of(&text);
        assert!(
            got.iter().any(|(k, _, m)| k == key && m.contains(message)),
            "{what}: expected {key}: …{message}… in {got:?}"
        );
    }
}
