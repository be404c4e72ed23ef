//! Parsers for the value kinds of the config file (durations, sizes, addresses, host names).
//! Each returns a sentence that says what is wrong, which the caller prefixes with key and line.

use std::net::SocketAddr;
use std::time::Duration;

/// Longest DNS name (RFC 1035 §2.3.4: 255 octets including length bytes → 253 characters).
pub const MAX_HOSTNAME_LEN: usize = 253;
/// Longest DNS label (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;
/// Default SMTP port for a relay given without one (RFC 5321 §4.5.4.2 — port 25).
pub const DEFAULT_RELAY_PORT: u16 = 25;

/// `"30s"`, `"5m"`, `"4h"`, `"5d"`, `"1w"`, `"500ms"`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || {
        format!(
            "\"{text}\" is not a duration; use a number with a unit: \"30s\", \"5m\", \"4h\", \"5d\""
        )
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let secs_per_unit = match unit.trim().to_ascii_lowercase().as_str() {
        "ms" => return Ok(Duration::from_millis(n)),
        "" | "s" | "sec" | "secs" => 1,
        "m" | "min" | "mins" => 60,
        "h" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        "w" | "week" | "weeks" => 7 * 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(secs_per_unit)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("\"{text}\" is too long"))
}

/// `"50M"`, `"512K"`, `"1G"`, `"100"` (bytes); units are binary (K = 1024). `B`/`iB` may follow.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || {
        format!(
            "\"{text}\" is not a size; use a number with an optional unit: \"512K\", \"50M\", \"1G\""
        )
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let unit = unit.trim().to_ascii_uppercase();
    let unit = unit
        .strip_suffix("IB")
        .or_else(|| unit.strip_suffix('B'))
        .unwrap_or(&unit);
    let factor: u64 = match unit {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return Err(bad()),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("\"{text}\" is too large"))
}

/// A DNS host name: dot-separated labels of letters, digits and hyphens (RFC 1123 §2.1).
pub fn check_hostname(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > MAX_HOSTNAME_LEN {
        return Err(format!(
            "\"{name}\" is longer than {MAX_HOSTNAME_LEN} characters"
        ));
    }
    for label in name.trim_end_matches('.').split('.') {
        let ok_chars = label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if label.is_empty()
            || label.len() > MAX_LABEL_LEN
            || !ok_chars
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err(format!(
                "\"{name}\" is not a valid host name (letters, digits and hyphens between dots)"
            ));
        }
    }
    Ok(())
}

/// `IP:PORT` for a listener (`127.0.0.1:2525`, `[::1]:993`, `0.0.0.0:25`).
/// `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a network of one).
/// An ACME directory: RFC 8555 §6.1 requires HTTPS.
pub fn check_https_url(text: &str) -> Result<(), String> {
    let text = text.trim();
    let Some(rest) = text.strip_prefix("https://") else {
        return Err(format!(
            "\"{text}\" must start with https:// (RFC 8555 §6.1)"
        ));
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("\"{text}\" is not a URL with a host"));
    }
    Ok(())
}

/// An ACME account contact (RFC 8555 §7.3: `mailto:` URLs; one address, no header fields).
pub fn check_mailto(text: &str) -> Result<(), String> {
    let Some(addr) = text.strip_prefix("mailto:") else {
        return Err(format!(
            "\"{text}\" must be a mailto: URL, like \"mailto:postmaster@example.com\""
        ));
    };
    match addr.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && !domain.is_empty()
                && !addr.contains([',', '?', ' ', '<', '>'])
                && check_hostname(domain).is_ok() =>
        {
            Ok(())
        }
        _ => Err(format!("\"{text}\" is not mailto: one address")),
    }
}

pub fn parse_network(text: &str) -> Result<bulwark_net::IpNet, String> {
    let t = text.trim();
    if let Ok(net) = t.parse::<bulwark_net::IpNet>() {
        return Ok(net.trunc());
    }
    t.parse::<std::net::IpAddr>()
        .map(bulwark_net::IpNet::from)
        .map_err(|_| format!("\"{t}\" is not a network like \"10.0.0.0/8\" or an IP address"))
}

pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    text.trim().parse::<SocketAddr>().map_err(|_| {
        format!(
            "\"{text}\" is not an IP:PORT address (for example \"127.0.0.1:2525\" or \"[::]:993\")"
        )
    })
}

/// `HOST[:PORT]` for the smarthost; returns `host:port` with the default port filled in.
pub fn parse_relay(text: &str) -> Result<String, String> {
    let t = text.trim();
    if let Ok(addr) = t.parse::<SocketAddr>() {
        return Ok(addr.to_string());
    }
    let bad = || {
        format!("\"{text}\" is not a HOST[:PORT] address (for example \"smtp.example.net:587\")")
    };
    let (host, port) = match t.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
        None => (t, DEFAULT_RELAY_PORT),
    };
    if port == 0 {
        return Err(format!("\"{text}\": port 0 cannot be connected to"));
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.parse::<std::net::IpAddr>().is_err() && check_hostname(host).is_err() {
        return Err(bad());
    }
    if host.contains(':') {
        return Ok(format!("[{host}]:{port}"));
    }
    Ok(format!("{host}:{port}"))
}

/// URL schemes of the PostgreSQL store (libpq accepts both).
pub const POSTGRES_SCHEMES: [&str; 2] = ["postgres://", "postgresql://"];
/// Longest node name: it is stored with every queue lease.
pub const MAX_NODE_ID_LEN: usize = 64;

/// `postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?OPTIONS]`. Messages never repeat the password.
pub fn parse_store_url(text: &str) -> Result<(), String> {
    let t = text.trim();
    let example = "for example \"postgres://bulwark@db.example.com:5432/bulwark\"";
    let Some(rest) = POSTGRES_SCHEMES.iter().find_map(|s| {
        t.get(..s.len())
            .filter(|p| p.eq_ignore_ascii_case(s))
            .map(|_| &t[s.len()..])
    }) else {
        let scheme = t.split_once("://").map(|(s, _)| s).unwrap_or("");
        return Err(if scheme.is_empty() {
            format!(
                "not a URL; use postgres://USER@HOST:PORT/DB ({example}), or remove `store` for the embedded store"
            )
        } else {
            format!(
                "unsupported store \"{scheme}://…\"; only postgres:// is supported ({example}), or remove `store` for the embedded store"
            )
        });
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((user, hostport)) => (Some(user), hostport),
        None => (None, authority),
    };
    if let Some(user) = user {
        let name = user.split_once(':').map(|(n, _)| n).unwrap_or(user);
        if name.is_empty() {
            return Err(format!("the user name before '@' is empty ({example})"));
        }
    }
    let (host, port) = split_host_port(hostport);
    if host.is_empty() {
        return Err(format!("the URL has no host ({example})"));
    }
    if host.parse::<std::net::IpAddr>().is_err() && check_hostname(host).is_err() {
        return Err(format!(
            "\"{host}\" is not a host name or IP address ({example})"
        ));
    }
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(p) if p != 0 => {}
            _ => return Err(format!("\"{port}\" is not a port number (1-65535)")),
        }
    }
    let db = path.split('?').next().unwrap_or("");
    if db.is_empty() {
        return Err(format!(
            "the URL names no database after the host ({example})"
        ));
    }
    Ok(())
}

/// `host:port`, `[v6]:port`, `host` → (host, port).
fn split_host_port(text: &str) -> (&str, Option<&str>) {
    if let Some(v6) = text.strip_prefix('[') {
        return match v6.split_once(']') {
            Some((host, rest)) => (host, rest.strip_prefix(':')),
            None => (v6, None),
        };
    }
    match text.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (text, None),
    }
}

/// The URL with any password replaced by `***`, for logs and `bulwark status`.
pub fn redact_store_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{scheme}://{name}:***@{host}{path}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// A node name: 1 to [`MAX_NODE_ID_LEN`] letters, digits, `.`, `_` or `-`.
pub fn check_node_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("must not be empty".into());
    }
    if id.len() > MAX_NODE_ID_LEN {
        return Err(format!(
            "\"{id}\" is longer than {MAX_NODE_ID_LEN} characters"
        ));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(format!(
            "\"{id}\" may contain only letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// The default node name: `MACHINE-XXXXXXXX`, the machine's host name and a hash of the data
/// directory, so two servers on one machine differ and a restart keeps the name.
pub fn default_node_id(machine: &str, data_dir: &std::path::Path) -> String {
    let machine: String = machine
        .trim()
        .split('.')
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(MAX_NODE_ID_LEN - 9)
        .collect();
    let machine = if machine.is_empty() {
        "node".to_string()
    } else {
        machine
    };
    format!(
        "{machine}-{:08x}",
        fnv1a32(data_dir.as_os_str().as_encoded_bytes())
    )
}

/// FNV-1a (32 bit): a hash that never changes between Rust releases (unlike `DefaultHasher`).
fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// The machine's host name (Linux), or `None`.
pub fn machine_hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_need_postgres_scheme_host_and_database() {
        for good in [
            "postgres://bulwark@db.example.com:5432/bulwark",
            "postgresql://postgres@127.0.0.1:15432/postgres",
            "postgres://u:secret@[::1]:5432/mail?sslmode=disable",
            "postgres://db.example.com/mail",
        ] {
            assert_eq!(parse_store_url(good), Ok(()), "{good}");
        }
        let no_scheme = parse_store_url("db.example.com/mail").unwrap_err();
        assert!(no_scheme.contains("not a URL"), "{no_scheme}");
        let mysql = parse_store_url("mysql://u@h/db").unwrap_err();
        assert!(mysql.contains("unsupported store \"mysql://"), "{mysql}");
        assert!(
            parse_store_url("postgres://u@:5432/db")
                .unwrap_err()
                .contains("no host")
        );
        assert!(
            parse_store_url("postgres://u@h:99999/db")
                .unwrap_err()
                .contains("port")
        );
        assert!(
            parse_store_url("postgres://u@h:5432")
                .unwrap_err()
                .contains("no database")
        );
        assert!(
            parse_store_url("postgres://@h/db")
                .unwrap_err()
                .contains("user name")
        );
        let bad_host = parse_store_url("postgres://u:hunter2@bad_host/db").unwrap_err();
        assert!(
            !bad_host.contains("hunter2"),
            "never echo the password: {bad_host}"
        );
    }

    #[test]
    fn store_url_passwords_are_redacted() {
        assert_eq!(
            redact_store_url("postgres://u:hunter2@h:1/db"),
            "postgres://u:***@h:1/db"
        );
        assert_eq!(redact_store_url("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn node_ids_are_short_plain_names() {
        assert!(check_node_id("mail-1.eu_west").is_ok());
        assert!(check_node_id("").is_err());
        assert!(check_node_id("has space").is_err());
        assert!(check_node_id(&"n".repeat(MAX_NODE_ID_LEN + 1)).is_err());
    }

    #[test]
    fn default_node_id_is_stable_and_differs_per_data_dir() {
        let a = default_node_id("box.example.com", std::path::Path::new("/srv/a"));
        assert_eq!(
            a,
            default_node_id("box.example.com", std::path::Path::new("/srv/a"))
        );
        assert!(a.starts_with("box-"), "{a}");
        assert_ne!(a, default_node_id("box", std::path::Path::new("/srv/b")));
        assert!(check_node_id(&a).is_ok());
        assert!(check_node_id(&default_node_id("", std::path::Path::new("/x"))).is_ok());
    }

    #[test]
    fn durations_accept_units_and_bare_seconds() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("4h"), Ok(Duration::from_secs(4 * 3600)));
        assert_eq!(parse_duration("5d"), Ok(Duration::from_secs(5 * 86_400)));
        assert_eq!(parse_duration("1w"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
    }

    #[test]
    fn durations_reject_unknown_units_and_junk() {
        for bad in [
            "5 fortnights",
            "d5",
            "",
            "-3s",
            "1.5h",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn sizes_are_binary_multiples() {
        assert_eq!(parse_size("50M"), Ok(50 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("10MiB"), Ok(10 << 20));
        assert_eq!(parse_size("10MB"), Ok(10 << 20));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("50X").is_err());
        assert!(parse_size("M").is_err());
    }

    #[test]
    fn hostnames_follow_rfc_1123() {
        assert!(check_hostname("mail.example.test").is_ok());
        assert!(check_hostname("localhost").is_ok());
        assert!(check_hostname("mail.example.test.").is_ok());
        assert!(check_hostname("").is_err());
        assert!(check_hostname("mail..example").is_err());
        assert!(check_hostname("-mail.example").is_err());
        assert!(check_hostname("mail_server.example").is_err());
        assert!(check_hostname(&"a".repeat(64)).is_err());
    }

    #[test]
    fn listen_needs_ip_and_port() {
        assert_eq!(parse_listen("127.0.0.1:0").map(|a| a.port()), Ok(0));
        assert!(parse_listen("[::1]:993").is_ok());
        assert!(parse_listen("localhost:25").is_err());
        assert!(parse_listen("127.0.0.1").is_err());
        assert!(parse_listen("127.0.0.1:70000").is_err());
    }

    #[test]
    fn relay_fills_in_port_25() {
        assert_eq!(
            parse_relay("smtp.example.net").as_deref(),
            Ok("smtp.example.net:25")
        );
        assert_eq!(
            parse_relay("smtp.example.net:587").as_deref(),
            Ok("smtp.example.net:587")
        );
        assert_eq!(
            parse_relay("127.0.0.1:2600").as_deref(),
            Ok("127.0.0.1:2600")
        );
        assert_eq!(parse_relay("[::1]:2600").as_deref(), Ok("[::1]:2600"));
        assert!(parse_relay("smtp example").is_err());
        assert!(parse_relay("host:port").is_err());
        assert!(parse_relay("host:0").is_err());
    }
}
