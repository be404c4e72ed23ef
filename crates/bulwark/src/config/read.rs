//! Stage one of loading: walk the TOML document (with spans, for line numbers), check every
//! key against the schema and parse every value into its kind. All problems are collected.

use super::Problem;
use super::schema::{self, KeyDef, Kind, SECTIONS};
use super::values;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use toml_edit::{ImDocument, Item, TableLike, Value};

/// A parsed value of one key.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Text(String),
    Addr(SocketAddr),
    Duration(Duration),
    Int(u64),
    Bool(bool),
    Addrs(Vec<SocketAddr>),
    Nets(Vec<bulwark_net::IpNet>),
    Hosts(Vec<String>),
}

/// A parsed value and the line its key is on.
#[derive(Debug, Clone)]
pub struct Entry {
    pub value: Parsed,
    pub line: usize,
}

/// Every key that parsed, by its full path (`limits.max_message_size`).
pub type Values = BTreeMap<String, Entry>;

/// Parses `text`; returns the values that parsed and the problems found.
pub fn read(text: &str) -> (Values, Vec<Problem>) {
    let lines = LineIndex::new(text);
    let mut values = Values::new();
    let mut problems = Vec::new();
    let doc = match ImDocument::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let line = e.span().map(|s| lines.line_of(s.start));
            let message = format!("TOML syntax error: {}", e.message().trim());
            problems.push(Problem {
                key: "(file)".into(),
                line,
                message,
            });
            return (values, problems);
        }
    };
    let root = doc.as_table();
    for (name, item) in root.iter() {
        let line = root
            .key(name)
            .and_then(|k| k.span())
            .map(|s| lines.line_of(s.start))
            .unwrap_or(1);
        if SECTIONS.contains(&name) {
            match item.as_table_like() {
                Some(table) => read_section(name, table, &lines, &mut values, &mut problems),
                None => problems.push(Problem::at(
                    name,
                    line,
                    format!("expected a table [{name}], found {}", type_name(item)),
                )),
            }
        } else if let Some(def) = schema::lookup("", name) {
            read_value(def, item, line, &mut values, &mut problems);
        } else if item.is_table_like() {
            let message = match schema::closest(name, SECTIONS.iter().copied()) {
                Some(s) => format!("unknown section; did you mean [{s}]?"),
                None => format!("unknown section; known sections are {}", section_list()),
            };
            problems.push(Problem::at(name, line, message));
        } else {
            problems.push(Problem::at(
                name,
                line,
                schema::unknown_key_message("", name),
            ));
        }
    }
    (values, problems)
}

fn read_section(
    section: &str,
    table: &dyn TableLike,
    lines: &LineIndex,
    values: &mut Values,
    problems: &mut Vec<Problem>,
) {
    for (name, item) in table.iter() {
        let line = table
            .get_key_value(name)
            .and_then(|(k, _)| k.span())
            .map(|s| lines.line_of(s.start))
            .unwrap_or(1);
        match schema::lookup(section, name) {
            Some(def) => read_value(def, item, line, values, problems),
            None => problems.push(Problem::at(
                &format!("{section}.{name}"),
                line,
                schema::unknown_key_message(section, name),
            )),
        }
    }
}

fn read_value(
    def: &KeyDef,
    item: &Item,
    line: usize,
    values: &mut Values,
    problems: &mut Vec<Problem>,
) {
    let path = def.path();
    match parse_item(def.kind, item) {
        Ok(value) => {
            values.insert(path, Entry { value, line });
        }
        Err(message) => problems.push(Problem::at(&path, line, message)),
    }
}

fn parse_item(kind: Kind, item: &Item) -> Result<Parsed, String> {
    let wrong_type = || format!("expected {}, found {}", kind.expected(), type_name(item));
    let value = item.as_value().ok_or_else(wrong_type)?;
    match (kind, value) {
        (Kind::Hostname, Value::String(s)) => {
            values::check_hostname(s.value())?;
            Ok(Parsed::Text(
                s.value()
                    .to_ascii_lowercase()
                    .trim_end_matches('.')
                    .to_string(),
            ))
        }
        (Kind::Path, Value::String(s)) if s.value().trim().is_empty() => {
            Err("must not be empty".into())
        }
        (Kind::Path, Value::String(s)) => Ok(Parsed::Text(s.value().to_string())),
        (Kind::Listen, Value::String(s)) => values::parse_listen(s.value()).map(Parsed::Addr),
        (Kind::Relay, Value::String(s)) => values::parse_relay(s.value()).map(Parsed::Text),
        (Kind::StoreUrl, Value::String(s)) => {
            values::parse_store_url(s.value()).map(|()| Parsed::Text(s.value().trim().to_string()))
        }
        (Kind::NodeId, Value::String(s)) => {
            values::check_node_id(s.value()).map(|()| Parsed::Text(s.value().to_string()))
        }
        (Kind::LogFilter, Value::String(s)) => {
            check_log_filter(s.value()).map(|()| Parsed::Text(s.value().to_string()))
        }
        (Kind::Duration, Value::String(s)) => {
            values::parse_duration(s.value()).map(Parsed::Duration)
        }
        (Kind::Duration, Value::Integer(i)) => {
            non_negative(*i.value()).map(|n| Parsed::Duration(Duration::from_secs(n)))
        }
        (Kind::Size, Value::String(s)) => values::parse_size(s.value()).map(Parsed::Int),
        (Kind::Size, Value::Integer(i)) => non_negative(*i.value()).map(Parsed::Int),
        (Kind::Count, Value::Integer(i)) if *i.value() >= 1 => Ok(Parsed::Int(*i.value() as u64)),
        (Kind::Count, Value::Integer(i)) => Err(format!("must be at least 1, found {}", i.value())),
        (Kind::Bool, Value::Boolean(b)) => Ok(Parsed::Bool(*b.value())),
        (Kind::Port, Value::Integer(i)) => match u16::try_from(*i.value()) {
            Ok(p) if p > 0 => Ok(Parsed::Int(u64::from(p))),
            _ => Err(format!("{} is not a port (1-65535)", i.value())),
        },
        (Kind::AddrList, Value::Array(items)) => {
            if items.len() > MAX_LIST_LEN {
                return Err(format!("at most {MAX_LIST_LEN} addresses"));
            }
            items
                .iter()
                .map(|v| match v {
                    Value::String(s) => values::parse_listen(s.value()).and_then(|a| {
                        if a.port() == 0 {
                            Err(format!("\"{}\": port 0 cannot be asked", s.value()))
                        } else {
                            Ok(a)
                        }
                    }),
                    _ => Err(wrong_type()),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Parsed::Addrs)
        }
        (Kind::HostList, Value::Array(items)) => {
            if items.len() > MAX_LIST_LEN {
                return Err(format!("at most {MAX_LIST_LEN} names"));
            }
            items
                .iter()
                .map(|v| match v {
                    Value::String(s) => values::check_hostname(s.value())
                        .map(|()| s.value().trim_end_matches('.').to_ascii_lowercase()),
                    _ => Err(wrong_type()),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Parsed::Hosts)
        }
        (Kind::HttpsUrl, Value::String(s)) => {
            values::check_https_url(s.value()).map(|()| Parsed::Text(s.value().trim().to_string()))
        }
        (Kind::AcmeChallenge, Value::String(s)) => match s.value().as_str() {
            v @ ("http-01" | "tls-alpn-01") => Ok(Parsed::Text(v.to_string())),
            other => Err(format!(
                "\"{other}\" is not a supported challenge; use \"http-01\" or \"tls-alpn-01\""
            )),
        },
        (Kind::MailtoList, Value::Array(items)) => {
            if items.len() > MAX_LIST_LEN {
                return Err(format!("at most {MAX_LIST_LEN} contacts"));
            }
            items
                .iter()
                .map(|v| match v {
                    Value::String(s) => {
                        values::check_mailto(s.value()).map(|()| s.value().to_string())
                    }
                    _ => Err(wrong_type()),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Parsed::Hosts)
        }
        (Kind::NetList, Value::Array(items)) => {
            if items.len() > MAX_LIST_LEN {
                return Err(format!("at most {MAX_LIST_LEN} networks"));
            }
            items
                .iter()
                .map(|v| match v {
                    Value::String(s) => values::parse_network(s.value()),
                    _ => Err(wrong_type()),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Parsed::Nets)
        }
        _ => Err(wrong_type()),
    }
}

/// Longest list a key takes.
const MAX_LIST_LEN: usize = 16;

fn non_negative(n: i64) -> Result<u64, String> {
    u64::try_from(n).map_err(|_| format!("must not be negative, found {n}"))
}

/// Level names a bare log directive may be; a bare word that is not one is almost always a typo.
const LOG_LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

/// `info`, or `info,bulwark_smtp=debug`: each directive is a level or `target=level`.
fn check_log_filter(filter: &str) -> Result<(), String> {
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level = directive
            .rsplit_once('=')
            .map(|(_, l)| l)
            .unwrap_or(directive);
        if !LOG_LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            let hint = match schema::closest(level, LOG_LEVELS.iter().copied()) {
                Some(s) => format!("; did you mean \"{s}\"?"),
                None => format!("; levels are {}", LOG_LEVELS.join(", ")),
            };
            return Err(format!("\"{level}\" is not a log level{hint}"));
        }
    }
    Ok(())
}

fn type_name(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
        Item::Value(v) => match v {
            Value::String(_) => "a string",
            Value::Integer(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Boolean(_) => "a boolean",
            Value::Datetime(_) => "a date-time",
            Value::Array(_) => "an array",
            Value::InlineTable(_) => "a table",
        },
    }
}

fn section_list() -> String {
    SECTIONS
        .iter()
        .map(|s| format!("[{s}]"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Byte offset → 1-based line number.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    fn line_of(&self, offset: usize) -> usize {
        match self.starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }
}
