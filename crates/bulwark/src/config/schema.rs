//! Every configuration key, declared once: its section, name, type, default and one-line doc.
//! `docs/config.md` and `bulwark.example.toml` describe exactly these keys (a test checks it).

/// What kind of value a key takes; each kind has one parser in [`super::values`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A DNS host name (`mail.example.com`).
    Hostname,
    /// A file-system path; relative paths are relative to the config file's directory.
    Path,
    /// A socket address to listen on, `IP:PORT` (`127.0.0.1:2525`, `[::]:993`); port 0 = any free port.
    Listen,
    /// A smarthost, `HOST[:PORT]` (default port 25).
    Relay,
    /// A duration: seconds as an integer, or a string with a unit (`500ms`, `30s`, `5m`, `4h`, `5d`, `1w`).
    Duration,
    /// A byte size: an integer, or a string with a binary unit (`512K`, `50M`, `1G`).
    Size,
    /// A positive integer.
    Count,
    Bool,
    /// A tracing filter: a level (`info`) or directives (`info,bulwark_smtp=debug`).
    LogFilter,
    /// Where the mail lives: a `postgres://user@host:port/db` URL.
    StoreUrl,
    /// A node name: letters, digits, `.`, `_`, `-`.
    NodeId,
    /// A list of `IP:PORT` addresses (`["127.0.0.1:53", "[::1]:53"]`).
    AddrList,
    /// A TCP port, 1–65535.
    Port,
    /// A list of DNS names (`["zen.spamhaus.org"]`).
    HostList,
    /// An `https://` URL (the ACME directory).
    HttpsUrl,
    /// A list of `mailto:` URLs (`["mailto:postmaster@example.com"]`).
    MailtoList,
    /// The ACME challenge: `"http-01"` or `"tls-alpn-01"`.
    AcmeChallenge,
    /// A list of IP networks in CIDR form (`["10.0.0.0/8", "2001:db8::/32"]`); a bare
    /// address is a network of that one address.
    NetList,
}

impl Kind {
    /// Human description used in "expected …" messages.
    pub fn expected(self) -> &'static str {
        match self {
            Kind::Hostname => "a host name string like \"mail.example.com\"",
            Kind::Path => "a path string",
            Kind::Listen => "an address string like \"127.0.0.1:2525\"",
            Kind::Relay => "a host string like \"smtp.example.net:587\"",
            Kind::Duration => {
                "a duration like \"30s\", \"5m\", \"4h\", \"5d\" or an integer number of seconds"
            }
            Kind::Size => "a size like \"50M\", \"512K\", \"1G\" or an integer number of bytes",
            Kind::Count => "a positive integer",
            Kind::Bool => "true or false",
            Kind::LogFilter => "a log level string like \"info\" or \"info,bulwark_smtp=debug\"",
            Kind::StoreUrl => {
                "a URL string like \"postgres://bulwark@db.example.com:5432/bulwark\""
            }
            Kind::NodeId => "a node name string like \"mail-1\"",
            Kind::AddrList => "a list of addresses like [\"127.0.0.1:53\"]",
            Kind::HostList => "a list of DNS names like [\"bl.example.net\"]",
            Kind::Port => "a port number (1-65535)",
            Kind::NetList => "a list of networks like [\"10.0.0.0/8\"]",
            Kind::HttpsUrl => "an https:// URL string",
            Kind::MailtoList => "a list of mailto: URLs like [\"mailto:postmaster@example.com\"]",
            Kind::AcmeChallenge => "\"http-01\" or \"tls-alpn-01\"",
        }
    }
}

/// One configuration key.
#[derive(Debug, Clone, Copy)]
pub struct KeyDef {
    /// Table name (`listen`, `limits`, …), or `""` for top-level keys.
    pub section: &'static str,
    pub name: &'static str,
    pub kind: Kind,
    /// Default as written in TOML, or `""` when the key is unset by default.
    pub default: &'static str,
    pub doc: &'static str,
}

impl KeyDef {
    /// `section.name`, or `name` for top-level keys.
    pub fn path(&self) -> String {
        if self.section.is_empty() {
            self.name.to_string()
        } else {
            format!("{}.{}", self.section, self.name)
        }
    }
}

/// The tables a config file may contain.
pub const SECTIONS: &[&str] = &[
    "listen",
    "tls",
    "acme",
    "outbound",
    "dns",
    "auth_checks",
    "limits",
    "auth",
    "push",
    "quota",
    "spam",
    "log",
];

macro_rules! key {
    ($section:literal, $name:literal, $kind:ident, $default:literal, $doc:literal) => {
        KeyDef {
            section: $section,
            name: $name,
            kind: Kind::$kind,
            default: $default,
            doc: $doc,
        }
    };
}

pub const KEYS: &[KeyDef] = &[
    key!(
        "",
        "hostname",
        Hostname,
        "",
        "Public name of this server: SMTP greeting and EHLO, Received headers, the self-signed certificate. Required."
    ),
    key!(
        "",
        "data_dir",
        Path,
        "\"./bulwark-data\"",
        "Where the database, messages and the generated certificate live. Relative to the config file's directory."
    ),
    key!(
        "",
        "store",
        StoreUrl,
        "",
        "Where accounts and mail live. Unset: the embedded SQLite store in `data_dir`. `postgres://USER[:PASSWORD]@HOST[:PORT]/DB`: a shared PostgreSQL, so several nodes can serve the same mail (each keeps its own `data_dir` for TLS and spool files)."
    ),
    key!(
        "",
        "node_id",
        NodeId,
        "",
        "This node's name among several sharing one store (queue leases, logs, `bulwark status`). Unset: the machine's host name plus a suffix derived from `data_dir`, stable across restarts. `--node-id` overrides it."
    ),
    key!(
        "",
        "drain_timeout",
        Duration,
        "\"30s\"",
        "On SIGTERM or `bulwark node drain`: how long open sessions may take to finish before the server exits anyway."
    ),
    key!(
        "listen",
        "smtp",
        Listen,
        "",
        "Inbound MX (port 25 in production): accepts mail for local recipients, STARTTLS offered."
    ),
    key!(
        "listen",
        "submission",
        Listen,
        "",
        "Message submission (port 587): STARTTLS, then AUTH required."
    ),
    key!(
        "listen",
        "submissions",
        Listen,
        "",
        "Message submission over implicit TLS (port 465)."
    ),
    key!(
        "listen",
        "imap",
        Listen,
        "",
        "IMAP with STARTTLS (port 143)."
    ),
    key!(
        "listen",
        "imaps",
        Listen,
        "",
        "IMAP over implicit TLS (port 993)."
    ),
    key!(
        "listen",
        "pop3",
        Listen,
        "",
        "POP3 with STLS (port 110): the account's INBOX; USER/PASS and AUTH PLAIN only after STLS."
    ),
    key!(
        "listen",
        "pop3s",
        Listen,
        "",
        "POP3 over implicit TLS (port 995)."
    ),
    key!(
        "listen",
        "managesieve",
        Listen,
        "",
        "ManageSieve (RFC 5804, port 4190) with STARTTLS: the account's Sieve filter scripts (Thunderbird's Sieve add-on, `sieve-connect`); AUTHENTICATE PLAIN only after STARTTLS."
    ),
    key!(
        "listen",
        "http",
        Listen,
        "",
        "HTTP: JMAP (RFC 8620/8621, `/.well-known/jmap`) and the probes `GET /healthz` (alive) and `GET /readyz` (store answers). Plain HTTP: put a TLS proxy in front for remote clients."
    ),
    key!(
        "tls",
        "cert",
        Path,
        "",
        "PEM certificate chain. Without `cert` and `key` a self-signed certificate for `hostname` is generated once and kept in `data_dir/tls/`."
    ),
    key!("tls", "key", Path, "", "PEM private key for `cert`."),
    key!(
        "acme",
        "directory",
        HttpsUrl,
        "",
        "ACME (RFC 8555) directory URL; set, Bulwark obtains and renews its certificate itself (and `[tls] cert`/`key` must be unset). Let's Encrypt: `https://acme-v02.api.letsencrypt.org/directory`, staging `https://acme-staging-v02.api.letsencrypt.org/directory`. Unset: ACME off."
    ),
    key!(
        "acme",
        "contact",
        MailtoList,
        "",
        "Contact URLs for the ACME account (`mailto:` only), where the CA writes about expiry and problems."
    ),
    key!(
        "acme",
        "domains",
        HostList,
        "",
        "The names on the certificate (each must reach this server). Default: `hostname`."
    ),
    key!(
        "acme",
        "challenge",
        AcmeChallenge,
        "\"http-01\"",
        "How the CA checks the names: `http-01` (port 80 must reach `listen.http`) or `tls-alpn-01` (RFC 8737; port 443 must reach a TLS listener: `listen.imaps`, `listen.submissions` or `listen.pop3s`)."
    ),
    key!(
        "acme",
        "renew_before",
        Duration,
        "\"30d\"",
        "Renew a certificate this long before it expires; checked at start and every few minutes, swapped in without a restart."
    ),
    key!(
        "acme",
        "ca_file",
        Path,
        "",
        "PEM roots to trust for the ACME server's own HTTPS (a test CA such as pebble's). Unset: the system's roots."
    ),
    key!(
        "outbound",
        "relay",
        Relay,
        "",
        "Smarthost for all outbound mail, `HOST[:PORT]` (default port 25). Without it: MX lookup for each recipient domain."
    ),
    key!(
        "outbound",
        "queue_lifetime",
        Duration,
        "\"5d\"",
        "How long undeliverable mail is retried before a bounce (DSN) goes back to the sender."
    ),
    key!(
        "outbound",
        "retry_base",
        Duration,
        "\"1m\"",
        "Delay before the first retry; doubled after each failed attempt."
    ),
    key!(
        "outbound",
        "retry_max",
        Duration,
        "\"4h\"",
        "Longest delay between two retries."
    ),
    key!(
        "outbound",
        "mx_port",
        Port,
        "25",
        "Port of the MX hosts outbound mail is delivered to (without `relay`). 25 on the internet; another only to point servers at each other in a test."
    ),
    key!(
        "outbound",
        "mta_sts",
        Bool,
        "true",
        "Honour recipient domains' MTA-STS policies (RFC 8461, without `relay`): for a domain whose policy is `enforce`, mail goes only to the MX hosts the policy lists, over STARTTLS with a certificate valid for the host — never in cleartext; otherwise it waits in the queue. Policies are fetched over HTTPS and cached in the store for their `max_age`."
    ),
    key!(
        "outbound",
        "tls_ca_file",
        Path,
        "",
        "PEM roots trusted, besides the system's, when outbound TLS must be verified (MTA-STS `enforce`, policy fetches): a private CA. Unset: the system's roots."
    ),
    key!(
        "dns",
        "servers",
        AddrList,
        "",
        "Name servers for every lookup the server makes (MX, A/AAAA, TXT for SPF/DKIM/DMARC, PTR), as `[\"IP:PORT\", …]`. Unset: the system's (`/etc/resolv.conf`)."
    ),
    key!(
        "dns",
        "timeout",
        Duration,
        "\"5s\"",
        "How long one DNS query waits for an answer; one lookup gives up after at most a few of these (a `temperror`, never a verdict)."
    ),
    key!(
        "auth_checks",
        "enabled",
        Bool,
        "true",
        "Check mail arriving on the inbound MX without authentication: SPF (HELO and MAIL FROM), DKIM, DMARC, reverse DNS; the results go into one `Authentication-Results` field at the top of the stored copy. Authenticated submission is not checked."
    ),
    key!(
        "auth_checks",
        "dmarc_reject",
        Bool,
        "true",
        "Refuse mail that fails DMARC of a domain publishing `p=reject`, with `550 5.7.1` at the end of DATA. `false`: file it into Junk instead."
    ),
    key!(
        "auth_checks",
        "dmarc_quarantine",
        Bool,
        "true",
        "File mail that fails DMARC of a domain publishing `p=quarantine` into the recipient's Junk mailbox."
    ),
    key!(
        "auth_checks",
        "tempfail_on_dns_error",
        Bool,
        "false",
        "When DNS does not answer in time, DMARC is a `temperror`: `false` delivers the message anyway (never lost), `true` answers `451 4.7.0` so the sender retries later."
    ),
    key!(
        "limits",
        "max_message_size",
        Size,
        "\"50M\"",
        "Largest message accepted by SMTP (announced as SIZE; larger gets 552) and by IMAP APPEND."
    ),
    key!(
        "limits",
        "max_import_size",
        Size,
        "\"256M\"",
        "Largest file the web client's \"Upload mail\" takes (`POST /migrate/import`, an mbox or one `.eml`); larger gets 413 before it is read. An upload is held in memory while it is imported (at most two at once), so keep it well below the machine's memory; bigger files go in with `bulwark import` on the server. Range 1K..2G."
    ),
    key!(
        "limits",
        "max_connections_per_ip",
        Count,
        "20",
        "Concurrent connections from one IP address, per protocol (HTTP too: behind a reverse proxy every client has the proxy's IP)."
    ),
    key!(
        "limits",
        "max_connections",
        Count,
        "1000",
        "Concurrent connections in total, per protocol."
    ),
    key!(
        "limits",
        "trusted_networks",
        NetList,
        "",
        "Networks exempt from `max_connections_per_ip` on IMAP, POP3, SMTP and HTTP (a reverse proxy or webmail host that carries many users' connections from one address), as `[\"10.0.0.0/8\", \"2001:db8::/32\"]`. `max_connections` still applies."
    ),
    key!(
        "limits",
        "smtp_idle_timeout",
        Duration,
        "\"5m\"",
        "An SMTP client silent this long is disconnected (RFC 5321 §4.5.3.2.7: at least 5 minutes)."
    ),
    key!(
        "limits",
        "imap_idle_timeout",
        Duration,
        "\"30m\"",
        "An IMAP client silent this long is logged out (RFC 9051 §5.4: at least 30 minutes); IDLE is exempt up to this too."
    ),
    key!(
        "limits",
        "imap_login_timeout",
        Duration,
        "\"60s\"",
        "An IMAP client that has not logged in this long after connecting is logged out (counted from the connection, however often it sends)."
    ),
    key!(
        "limits",
        "pop3_idle_timeout",
        Duration,
        "\"10m\"",
        "A POP3 client silent this long is logged out without deleting anything (RFC 1939 §3: at least 10 minutes); before login it is counted from the connection."
    ),
    key!(
        "limits",
        "http_header_timeout",
        Duration,
        "\"30s\"",
        "An HTTP client must send a whole request head within this (slowloris); also the longest wait for the next request on a kept-alive connection."
    ),
    key!(
        "limits",
        "http_idle_timeout",
        Duration,
        "\"5m\"",
        "An HTTP connection with no traffic either way this long is closed; push (EventSource, WebSocket) sends keep-alives well inside it."
    ),
    key!(
        "limits",
        "max_recipients",
        Count,
        "100",
        "Recipients per SMTP transaction (RFC 5321 §4.5.3.1.8: at least 100); more get 452."
    ),
    key!(
        "limits",
        "spool_max_bytes",
        Size,
        "\"1G\"",
        "When the store is unreachable, inbound mail waits in a local durable spool in `data_dir/spool` (replayed once when the store is back); beyond this many bytes SMTP answers 451."
    ),
    key!(
        "limits",
        "spool_max_messages",
        Count,
        "100000",
        "The most messages the local spool holds during a store outage; beyond this SMTP answers 451."
    ),
    key!(
        "auth",
        "allow_plaintext_on_loopback",
        Bool,
        "false",
        "Allow LOGIN/AUTH without TLS from 127.0.0.0/8 and ::1 (for local tools and tests). Never over other networks."
    ),
    key!(
        "auth",
        "failure_window",
        Duration,
        "\"10m\"",
        "Window in which failed logins are counted."
    ),
    key!(
        "auth",
        "ip_max_failures",
        Count,
        "10",
        "Failed logins from one IP inside the window before that IP is refused until the window passes. Attempts in flight count too (at most this many password checks run at once per IP); a success clears only that account's failures."
    ),
    key!(
        "auth",
        "account_delay_after",
        Count,
        "3",
        "Failed logins on one account after which each further attempt from an unknown device is delayed by `account_delay`."
    ),
    key!(
        "auth",
        "account_delay",
        Duration,
        "\"2s\"",
        "Delay (fixed, never growing) added to each attempt from an unknown device on an account that had `account_delay_after` failures."
    ),
    key!(
        "auth",
        "account_max_failures",
        Count,
        "20",
        "Failed logins on one account after which unknown devices may sign in with app passwords only, for `account_lockout`. Known devices (an IP that signed in within 30 days, a browser with its device cookie, a valid token) are exempt."
    ),
    key!(
        "auth",
        "account_lockout",
        Duration,
        "\"1m\"",
        "How long after the last failure the per-account lock-out for unknown devices lasts; the owner's known devices and app passwords keep working meanwhile."
    ),
    key!(
        "auth",
        "offline_cache_max_age",
        Duration,
        "\"7d\"",
        "While the account store is unreachable, password logins are checked against a local, encrypted cache of successful logins no older than this (\"0s\" turns the cache off)."
    ),
    key!(
        "push",
        "allow_private_networks",
        Bool,
        "false",
        "Let JMAP PushSubscription pushes (RFC 8620 §7.2) reach loopback, private and link-local addresses. Off: a push URL must resolve to a public address (a client cannot make the server probe its own network)."
    ),
    key!(
        "push",
        "ca_file",
        Path,
        "",
        "PEM file of extra trusted roots for push URLs (a push gateway with a private CA), beside the system's."
    ),
    key!(
        "quota",
        "default_storage",
        Size,
        "0",
        "How much mail an account may keep (the sum of its messages' sizes) unless `bulwark account quota` gave it its own limit; `0` means unlimited. Over it, delivery is deferred with `452 4.2.2`, IMAP APPEND/COPY answer `NO [OVERQUOTA]` and JMAP `overQuota`; IMAP QUOTA (RFC 9208) and JMAP Quota (RFC 9425) report it."
    ),
    key!(
        "spam",
        "enabled",
        Bool,
        "true",
        "Score inbound mail from unauthenticated clients (GTUBE, SPF/DKIM/DMARC results, DNS block lists, header and phishing rules) and add an `X-Spam-Status` field to each copy."
    ),
    key!(
        "spam",
        "junk_score",
        Count,
        "5",
        "From this score a message is filed into the recipient's Junk folder (a Sieve script may still file it elsewhere)."
    ),
    key!(
        "spam",
        "reject_score",
        Count,
        "",
        "From this score a message is refused with `550 5.7.1` at the end of DATA. Unset (the default): spam is filed into Junk, never refused."
    ),
    key!(
        "spam",
        "dnsbl",
        HostList,
        "[]",
        "DNS block list zones (RFC 5782) asked about the client's address; each that lists it adds 5 points. Example: `[\"zen.spamhaus.org\"]` (mind its terms of use)."
    ),
    key!(
        "spam",
        "clamav",
        Path,
        "",
        "The Unix socket of ClamAV's daemon (Debian `clamav-daemon`: `/run/clamav/clamd.ctl`). Set: every message (inbound and submitted) is scanned before it is stored, and one carrying a virus is refused with `554 5.7.1` for every recipient. Unset (the default): no virus scanning. Keep clamd's `StreamMaxLength` at least `[limits] max_message_size` (a larger message is delivered unscanned, with a warning)."
    ),
    key!(
        "spam",
        "clamav_defer_on_error",
        Bool,
        "true",
        "When clamd cannot be asked (down, too slow), defer the message with `451 4.7.1` so the sender retries (the default), instead of delivering it unscanned."
    ),
    key!(
        "spam",
        "greylisting",
        Bool,
        "false",
        "Greylisting (RFC 6647): the first message from a client network (IPv4 /24, IPv6 /64) and sender to an account is answered `451 4.7.1` at RCPT; a retry after `greylist_delay` passes, and that sender then passes for 36 days after its last message. Signed-in clients are never greylisted. Delays first mail from new senders by minutes."
    ),
    key!(
        "spam",
        "greylist_delay",
        Duration,
        "\"5m\"",
        "How long a greylisted first attempt waits before a retry is accepted."
    ),
    key!(
        "log",
        "level",
        LogFilter,
        "\"info\"",
        "Log filter (`error`, `warn`, `info`, `debug`, `trace`, or directives like `info,bulwark_imap=debug`). `RUST_LOG` overrides it."
    ),
];

/// The definition of `section.name`, if it exists.
pub fn lookup(section: &str, name: &str) -> Option<&'static KeyDef> {
    KEYS.iter().find(|k| k.section == section && k.name == name)
}

/// Smallest Jaro-Winkler similarity for a "did you mean" suggestion.
const SUGGESTION_SIMILARITY: f64 = 0.8;

/// The most similar of `candidates` to `wrong`, if it is close enough to be a likely typo.
pub fn closest<'a>(wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&wrong.to_ascii_lowercase(), c), c))
        .filter(|(score, _)| *score >= SUGGESTION_SIMILARITY)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Why `name` is not a key of `section`: a typo suggestion, or the section it belongs to.
pub fn unknown_key_message(section: &str, name: &str) -> String {
    if let Some(def) = KEYS.iter().find(|k| k.name == name && k.section != section) {
        return if def.section.is_empty() {
            format!("unknown key; `{name}` belongs at the top level, before any [section]")
        } else {
            format!("unknown key; `{name}` belongs in [{}]", def.section)
        };
    }
    let names = KEYS.iter().filter(|k| k.section == section).map(|k| k.name);
    match closest(name, names) {
        Some(s) => format!("unknown key; did you mean `{s}`?"),
        None => "unknown key".to_string(),
    }
}

/// The key reference as a Markdown table per section (embedded in `docs/config.md`).
pub fn reference_markdown() -> String {
    let mut out = String::new();
    let sections = std::iter::once("").chain(SECTIONS.iter().copied());
    for section in sections {
        if section.is_empty() {
            out.push_str("### Top level\n\n");
        } else {
            out.push_str(&format!("### `[{section}]`\n\n"));
        }
        out.push_str("| key | type | default | meaning |\n| --- | --- | --- | --- |\n");
        for k in KEYS.iter().filter(|k| k.section == section) {
            let default = if k.default.is_empty() {
                "(unset)".to_string()
            } else {
                format!("`{}`", k.default)
            };
            out.push_str(&format!(
                "| `{}` | {} | {default} | {} |\n",
                k.name,
                kind_name(k.kind),
                k.doc
            ));
        }
        out.push('\n');
    }
    out
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Hostname => "host name",
        Kind::Path => "path",
        Kind::Listen => "IP:PORT",
        Kind::Relay => "HOST[:PORT]",
        Kind::Duration => "duration",
        Kind::Size => "size",
        Kind::Count => "integer",
        Kind::Bool => "boolean",
        Kind::LogFilter => "log filter",
        Kind::StoreUrl => "URL",
        Kind::NodeId => "node name",
        Kind::AddrList => "list of IP:PORT",
        Kind::HostList => "list of DNS names",
        Kind::Port => "port",
        Kind::NetList => "list of CIDR networks",
        Kind::HttpsUrl => "https URL",
        Kind::MailtoList => "list of mailto: URLs",
        Kind::AcmeChallenge => "`http-01` or `tls-alpn-01`",
    }
}
