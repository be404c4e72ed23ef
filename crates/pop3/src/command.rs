//! Parsing of one POP3 command line (RFC 1939 §3, RFC 2449 §3): a case-insensitive keyword,
//! then arguments separated by spaces. Pure and total: every input gives a [`Command`] or a
//! [`CommandError`] with words for the client.

/// A parsed command. Message numbers are kept as given (clamped to `u32::MAX`); whether the
/// message exists is the session's question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// RFC 2449 §5.
    Capa,
    /// RFC 2595 §4.
    Stls,
    User(String),
    /// The whole rest of the line: RFC 1939 §7 lets a server treat spaces as part of the
    /// password.
    Pass(String),
    /// RFC 5034 §4: `AUTH mechanism [initial-response]`; without a mechanism, the list of
    /// mechanisms (what RFC 1734 clients ask).
    Auth {
        mechanism: Option<String>,
        initial: Option<String>,
    },
    Quit,
    Stat,
    List(Option<u32>),
    Retr(u32),
    Dele(u32),
    Noop,
    Rset,
    /// `TOP msg n`: the header and the first `n` body lines.
    Top(u32, u32),
    Uidl(Option<u32>),
}

/// Why a line is not a command (each counts as a bad command).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// Not a POP3 command we know (the keyword, made printable).
    Unknown(String),
    /// A known command with wrong arguments: the usage to show.
    Syntax(&'static str),
}

impl CommandError {
    /// The `-ERR` text.
    pub fn message(&self) -> String {
        match self {
            CommandError::Unknown(k) if k.is_empty() => "Empty command".into(),
            CommandError::Unknown(k) => format!("Unknown command {k}"),
            CommandError::Syntax(usage) => format!("Syntax error; usage: {usage}"),
        }
    }
}

/// Longest keyword shown back in an error (RFC 2449 §3: keywords are 3 or 4 characters).
const SHOWN_KEYWORD: usize = 16;

/// Parses one line without its line ending.
pub fn parse(line: &[u8]) -> Result<Command, CommandError> {
    let (keyword, rest) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &b""[..]),
    };
    let upper = keyword.to_ascii_uppercase();
    // PASS keeps its argument exactly (spaces included); everything else splits on spaces.
    if upper == b"PASS" {
        if rest.is_empty() {
            return Err(CommandError::Syntax("PASS password"));
        }
        return Ok(Command::Pass(String::from_utf8_lossy(rest).into_owned()));
    }
    let args: Vec<&[u8]> = rest
        .split(|&b| b == b' ' || b == b'\t')
        .filter(|a| !a.is_empty())
        .collect();
    let text = |a: &[u8]| String::from_utf8_lossy(a).into_owned();
    match (upper.as_slice(), args.as_slice()) {
        (b"CAPA", []) => Ok(Command::Capa),
        (b"CAPA", _) => Err(CommandError::Syntax("CAPA")),
        (b"STLS", []) => Ok(Command::Stls),
        (b"STLS", _) => Err(CommandError::Syntax("STLS")),
        (b"USER", [name]) => Ok(Command::User(text(name))),
        (b"USER", _) => Err(CommandError::Syntax("USER name")),
        (b"AUTH", []) => Ok(Command::Auth {
            mechanism: None,
            initial: None,
        }),
        (b"AUTH", [mech]) => Ok(Command::Auth {
            mechanism: Some(text(mech).to_ascii_uppercase()),
            initial: None,
        }),
        (b"AUTH", [mech, ir]) => Ok(Command::Auth {
            mechanism: Some(text(mech).to_ascii_uppercase()),
            initial: Some(text(ir)),
        }),
        (b"AUTH", _) => Err(CommandError::Syntax("AUTH mechanism [initial-response]")),
        (b"QUIT", []) => Ok(Command::Quit),
        (b"QUIT", _) => Err(CommandError::Syntax("QUIT")),
        (b"STAT", []) => Ok(Command::Stat),
        (b"STAT", _) => Err(CommandError::Syntax("STAT")),
        (b"NOOP", []) => Ok(Command::Noop),
        (b"NOOP", _) => Err(CommandError::Syntax("NOOP")),
        (b"RSET", []) => Ok(Command::Rset),
        (b"RSET", _) => Err(CommandError::Syntax("RSET")),
        (b"LIST", []) => Ok(Command::List(None)),
        (b"LIST", [n]) => number(n)
            .map(|n| Command::List(Some(n)))
            .ok_or(CommandError::Syntax("LIST [message-number]")),
        (b"LIST", _) => Err(CommandError::Syntax("LIST [message-number]")),
        (b"UIDL", []) => Ok(Command::Uidl(None)),
        (b"UIDL", [n]) => number(n)
            .map(|n| Command::Uidl(Some(n)))
            .ok_or(CommandError::Syntax("UIDL [message-number]")),
        (b"UIDL", _) => Err(CommandError::Syntax("UIDL [message-number]")),
        (b"RETR", [n]) => number(n)
            .map(Command::Retr)
            .ok_or(CommandError::Syntax("RETR message-number")),
        (b"RETR", _) => Err(CommandError::Syntax("RETR message-number")),
        (b"DELE", [n]) => number(n)
            .map(Command::Dele)
            .ok_or(CommandError::Syntax("DELE message-number")),
        (b"DELE", _) => Err(CommandError::Syntax("DELE message-number")),
        (b"TOP", [n, lines]) => match (number(n), number(lines)) {
            (Some(n), Some(lines)) => Ok(Command::Top(n, lines)),
            _ => Err(CommandError::Syntax("TOP message-number lines")),
        },
        (b"TOP", _) => Err(CommandError::Syntax("TOP message-number lines")),
        _ => Err(CommandError::Unknown(printable(keyword))),
    }
}

/// A decimal number (RFC 1939: digits only), clamped to `u32::MAX`; `None` when not digits.
fn number(arg: &[u8]) -> Option<u32> {
    if arg.is_empty() || !arg.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut n: u64 = 0;
    for &d in arg {
        n = (n * 10 + u64::from(d - b'0')).min(u64::from(u32::MAX));
    }
    u32::try_from(n).ok()
}

/// The keyword as safe text for an error line: printable ASCII only, shortened.
fn printable(keyword: &[u8]) -> String {
    let mut s: String = keyword
        .iter()
        .take(SHOWN_KEYWORD)
        .map(|&b| {
            if b.is_ascii_graphic() {
                char::from(b).to_ascii_uppercase()
            } else {
                '?'
            }
        })
        .collect();
    if keyword.len() > SHOWN_KEYWORD {
        s.push_str("...");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_case_insensitive() {
        assert_eq!(parse(b"capa"), Ok(Command::Capa));
        assert_eq!(parse(b"StLs"), Ok(Command::Stls));
        assert_eq!(parse(b"quit"), Ok(Command::Quit));
        assert_eq!(parse(b"noop"), Ok(Command::Noop));
        assert_eq!(parse(b"rset"), Ok(Command::Rset));
        assert_eq!(parse(b"stat"), Ok(Command::Stat));
    }

    #[test]
    fn arguments() {
        assert_eq!(
            parse(b"USER alice@example.test"),
            Ok(Command::User("alice@example.test".into()))
        );
        assert_eq!(
            parse(b"PASS with two  spaces "),
            Ok(Command::Pass("with two  spaces ".into()))
        );
        assert_eq!(parse(b"LIST"), Ok(Command::List(None)));
        assert_eq!(parse(b"LIST 3"), Ok(Command::List(Some(3))));
        assert_eq!(parse(b"UIDL 12"), Ok(Command::Uidl(Some(12))));
        assert_eq!(parse(b"RETR 1"), Ok(Command::Retr(1)));
        assert_eq!(parse(b"DELE 2"), Ok(Command::Dele(2)));
        assert_eq!(parse(b"TOP 1 0"), Ok(Command::Top(1, 0)));
        assert_eq!(
            parse(b"retr 99999999999999999999"),
            Ok(Command::Retr(u32::MAX))
        );
        assert_eq!(
            parse(b"AUTH plain dGVzdA=="),
            Ok(Command::Auth {
                mechanism: Some("PLAIN".into()),
                initial: Some("dGVzdA==".into())
            })
        );
        assert_eq!(
            parse(b"AUTH"),
            Ok(Command::Auth {
                mechanism: None,
                initial: None
            })
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            parse(b"RETR"),
            Err(CommandError::Syntax("RETR message-number"))
        );
        assert_eq!(
            parse(b"RETR x"),
            Err(CommandError::Syntax("RETR message-number"))
        );
        assert_eq!(
            parse(b"RETR -1"),
            Err(CommandError::Syntax("RETR message-number"))
        );
        assert_eq!(
            parse(b"TOP 1"),
            Err(CommandError::Syntax("TOP message-number lines"))
        );
        assert_eq!(parse(b"PASS"), Err(CommandError::Syntax("PASS password")));
        assert_eq!(parse(b"USER"), Err(CommandError::Syntax("USER name")));
        assert_eq!(parse(b"STAT 1"), Err(CommandError::Syntax("STAT")));
        assert_eq!(
            parse(b"APOP a b"),
            Err(CommandError::Unknown("APOP".into()))
        );
        assert_eq!(parse(b""), Err(CommandError::Unknown(String::new())));
        let Err(CommandError::Unknown(k)) = parse(b"\x00\xffGET-THE-WHOLE-THING-NOW") else {
            panic!("unknown");
        };
        assert_eq!(k, "??GET-THE-WHOLE-...");
        assert!(CommandError::Unknown("X".into()).message().contains('X'));
    }
}
