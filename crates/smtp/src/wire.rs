//! The only module that touches `smtp-proto` (pinned 0.2; its `ingest` signatures changed
//! between releases). It turns one complete command line into a [`Command`] and receives
//! message bodies (DATA with dot-unstuffing, BDAT chunks) with a size cap.
//!
//! Line framing is ours, not smtp-proto's `RequestReceiver`: the session cuts the input at LF,
//! enforces [`crate::limits::MAX_COMMAND_LINE`], and hands each whole line to
//! [`parse_command`], so a malformed command can never leave half a line behind to be read as
//! the next command.

use smtp_proto::request::receiver::{BdatReceiver, DataReceiver, DummyDataReceiver};
use smtp_proto::{Error as ProtoError, Request};

/// Largest slice handed to a body receiver at once, so the size check runs often enough that
/// an oversized body is never buffered much beyond the limit.
const BODY_SLICE: usize = 64 * 1024;

/// A parsed command with owned arguments; only what Bulwark implements is kept apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Ehlo(String),
    Helo(String),
    Mail(MailParams),
    Rcpt(RcptParams),
    Data,
    /// RFC 3030: `BDAT size [LAST]`.
    Bdat {
        size: usize,
        last: bool,
    },
    Auth {
        mechanism: Mechanism,
        initial_response: Option<String>,
    },
    StartTls,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Help,
    /// Recognised by the grammar but not offered here (EXPN, ETRN, ATRN, BURL, LHLO).
    NotImplemented,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailParams {
    /// Reverse-path without brackets; empty for the null sender `<>`.
    pub address: String,
    /// RFC 1870 `SIZE=`; 0 when absent.
    pub size: usize,
    /// RFC 6531 `SMTPUTF8`.
    pub smtputf8: bool,
    /// RFC 6152 `BODY=8BITMIME`.
    pub eight_bit: bool,
    /// A parameter we parse but do not offer (DSN, BINARYMIME, REQUIRETLS, …): 555.
    pub unsupported: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptParams {
    pub address: String,
    /// A parameter we do not offer (DSN NOTIFY/ORCPT, RRVS, CONNEG): 555.
    pub unsupported: Option<&'static str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Login,
    Other,
}

/// Why a command line was refused; the session maps each to one reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("unknown command")]
    Unknown,
    #[error("malformed command")]
    Malformed,
    #[error("syntax: {0}")]
    Syntax(&'static str),
    #[error("bad sender address")]
    BadSender,
    #[error("bad recipient address")]
    BadRecipient,
    #[error("invalid parameter {0}")]
    InvalidParameter(&'static str),
    #[error("unsupported parameter {0}")]
    UnsupportedParameter(String),
}

impl Command {
    /// MAIL, RCPT, DATA and BDAT move mail: their pace is bounded by the message size and
    /// recipient limits and by how fast the store commits, so they are exempt from the
    /// per-connection command rate (a relay delivering many messages over one connection is not
    /// abusive). Everything else (NOOP, RSET, VRFY, HELO, unknown commands…) counts.
    pub fn moves_mail(&self) -> bool {
        matches!(
            self,
            Command::Mail(_) | Command::Rcpt(_) | Command::Data | Command::Bdat { .. }
        )
    }
}

/// Parses one complete command line (including its LF).
pub fn parse_command(line: &[u8]) -> Result<Command, CommandError> {
    let mut iter = line.iter();
    let request = match Request::parse(&mut iter) {
        Ok(r) => r,
        Err(e) => return Err(map_error(e)),
    };
    Ok(match request {
        Request::Ehlo { host } => Command::Ehlo(host.into_owned()),
        Request::Helo { host } => Command::Helo(host.into_owned()),
        Request::Mail { from } => {
            let mut params = mail_params(from);
            if size_param_overflows(line) {
                // smtp-proto wraps an over-long SIZE= value; treat it as "too big" (RFC 1870 §6.1).
                params.size = usize::MAX;
            }
            Command::Mail(params)
        }
        Request::Rcpt { to } => Command::Rcpt(rcpt_params(to)),
        Request::Data => Command::Data,
        Request::Bdat {
            chunk_size,
            is_last,
        } => Command::Bdat {
            size: chunk_size,
            last: is_last,
        },
        Request::Auth {
            mechanism,
            initial_response,
        } => Command::Auth {
            mechanism: match mechanism {
                smtp_proto::AUTH_PLAIN => Mechanism::Plain,
                smtp_proto::AUTH_LOGIN => Mechanism::Login,
                _ => Mechanism::Other,
            },
            initial_response: (!initial_response.is_empty()).then(|| initial_response.into_owned()),
        },
        Request::StartTls => Command::StartTls,
        Request::Rset => Command::Rset,
        Request::Noop { .. } => Command::Noop,
        Request::Quit => Command::Quit,
        Request::Vrfy { .. } => Command::Vrfy,
        Request::Help { .. } => Command::Help,
        Request::Expn { .. }
        | Request::Etrn { .. }
        | Request::Atrn { .. }
        | Request::Burl { .. }
        | Request::Lhlo { .. } => Command::NotImplemented,
    })
}

fn map_error(e: ProtoError) -> CommandError {
    match e {
        ProtoError::UnknownCommand => CommandError::Unknown,
        ProtoError::InvalidSenderAddress => CommandError::BadSender,
        ProtoError::InvalidRecipientAddress => CommandError::BadRecipient,
        ProtoError::SyntaxError { syntax } => CommandError::Syntax(syntax),
        ProtoError::InvalidParameter { param } => CommandError::InvalidParameter(param),
        ProtoError::UnsupportedParameter { param } => CommandError::UnsupportedParameter(param),
        // A whole line that the grammar still finds incomplete, or a response-side error.
        ProtoError::NeedsMoreData { .. }
        | ProtoError::ResponseTooLong
        | ProtoError::InvalidResponse { .. } => CommandError::Malformed,
    }
}

/// True when the line carries a `SIZE=` value with more digits than fit in a `u64`.
fn size_param_overflows(line: &[u8]) -> bool {
    let upper = line.to_ascii_uppercase();
    upper
        .windows(5)
        .enumerate()
        .filter(|(_, w)| *w == b"SIZE=")
        .any(|(i, _)| {
            let digits = upper[i + 5..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            digits > 0
                && std::str::from_utf8(&upper[i + 5..i + 5 + digits])
                    .map(|d| d.parse::<u64>().is_err())
                    .unwrap_or(true)
        })
}

fn mail_params(from: smtp_proto::MailFrom<std::borrow::Cow<'_, str>>) -> MailParams {
    use smtp_proto::{MAIL_BODY_7BIT, MAIL_BODY_8BITMIME, MAIL_SMTPUTF8};
    let supported = MAIL_BODY_8BITMIME | MAIL_BODY_7BIT | MAIL_SMTPUTF8;
    let unsupported = if from.flags & smtp_proto::MAIL_BODY_BINARYMIME != 0 {
        Some("BODY=BINARYMIME")
    } else if from.flags & smtp_proto::MAIL_REQUIRETLS != 0 {
        Some("REQUIRETLS")
    } else if from.flags & (smtp_proto::MAIL_RET_FULL | smtp_proto::MAIL_RET_HDRS) != 0
        || from.env_id.is_some()
    {
        Some("RET/ENVID (DSN)")
    } else if from.flags & !supported != 0
        || from.by != 0
        || from.hold_for != 0
        || from.hold_until != 0
        || from.mtrk.is_some()
        || from.trans_id.is_some()
        || from.solicit.is_some()
        || from.mt_priority != 0
    {
        Some("extension parameter")
    } else {
        None
    };
    MailParams {
        address: from.address.into_owned(),
        size: from.size,
        smtputf8: from.flags & MAIL_SMTPUTF8 != 0,
        eight_bit: from.flags & MAIL_BODY_8BITMIME != 0,
        unsupported,
    }
}

fn rcpt_params(to: smtp_proto::RcptTo<std::borrow::Cow<'_, str>>) -> RcptParams {
    let unsupported = if to.flags != 0 || to.orcpt.is_some() || to.rrvs != 0 {
        Some("NOTIFY/ORCPT/RRVS")
    } else {
        None
    };
    RcptParams {
        address: to.address.into_owned(),
        unsupported,
    }
}

/// Receives a DATA body (RFC 5321 §4.1.1.4) up to `limit` octets; beyond it the rest is
/// consumed and thrown away until the end-of-data marker.
///
/// Smuggling: smtp-proto ends DATA only at `<CRLF>.<CRLF>`; a `<LF>.<LF>` or `<LF>.<CRLF>`
/// stays in the body. The session then rejects any body with a bare CR or LF (see
/// [`has_bare_line_ending`]), so such a body is never stored or relayed.
pub struct DataBody {
    receiver: DataSink,
    body: Vec<u8>,
    limit: usize,
    oversized: bool,
}

enum DataSink {
    Keep(DataReceiver),
    Discard(DummyDataReceiver),
}

impl DataBody {
    pub fn new(limit: usize) -> Self {
        let mut receiver = DataReceiver::new();
        // The body starts right after the DATA line's CRLF, so a "." on the first line ends it.
        // smtp-proto starts with no previous line; feeding it the CRLF primes that state.
        let mut primer = Vec::new();
        let _ = receiver.ingest(&mut b"\r\n".iter(), &mut primer);
        DataBody {
            receiver: DataSink::Keep(receiver),
            body: Vec::new(),
            limit,
            oversized: false,
        }
    }

    /// Consumes from `input`; returns the number of octets used and whether the end of data
    /// was reached.
    pub fn ingest(&mut self, input: &[u8]) -> (usize, bool) {
        let mut used = 0;
        while used < input.len() {
            let end = input.len().min(used + BODY_SLICE);
            let slice = &input[used..end];
            let mut iter = slice.iter();
            let done = match &mut self.receiver {
                DataSink::Keep(rx) => rx.ingest(&mut iter, &mut self.body),
                DataSink::Discard(rx) => rx.ingest(&mut iter),
            };
            used += slice.len() - iter.as_slice().len();
            if let DataSink::Keep(rx) = &self.receiver
                && self.body.len() > self.limit
            {
                self.receiver = DataSink::Discard(DummyDataReceiver::new_data(rx));
                self.body = Vec::new();
                self.oversized = true;
            }
            if done {
                return (used, true);
            }
        }
        (used, false)
    }

    /// The unstuffed body, or `None` when it exceeded the limit.
    pub fn finish(self) -> Option<Vec<u8>> {
        (!self.oversized).then_some(self.body)
    }
}

/// Receives one BDAT chunk of exactly `size` octets (RFC 3030 §2), appending to `body` unless
/// told to discard.
pub enum BdatChunk {
    Keep(BdatReceiver),
    Discard(DummyDataReceiver),
}

impl BdatChunk {
    pub fn keep(size: usize, last: bool) -> Self {
        BdatChunk::Keep(BdatReceiver::new(size, last))
    }

    pub fn discard(size: usize) -> Self {
        BdatChunk::Discard(DummyDataReceiver::new_bdat(size))
    }

    /// Consumes from `input`; returns octets used and whether the chunk is complete.
    pub fn ingest(&mut self, input: &[u8], body: &mut Vec<u8>) -> (usize, bool) {
        let mut iter = input.iter();
        let done = match self {
            BdatChunk::Keep(rx) => rx.ingest(&mut iter, body),
            BdatChunk::Discard(rx) => rx.ingest(&mut iter),
        };
        (input.len() - iter.as_slice().len(), done)
    }
}

/// RFC 5321 §2.3.8: in content, CR and LF may appear only together as CRLF. A bare LF (or CR)
/// is how SMTP smuggling hides a second message (`<LF>.<LF>` read as end-of-data by the next
/// hop), so bodies with either are refused.
pub fn has_bare_line_ending(body: &[u8]) -> bool {
    let mut prev = 0u8;
    for (i, &b) in body.iter().enumerate() {
        match b {
            b'\n' if prev != b'\r' => return true,
            b'\r' if body.get(i + 1) != Some(&b'\n') => return true,
            _ => {}
        }
        prev = b;
    }
    false
}

#[cfg(test)]
mod size_overflow_tests {
    use super::*;

    #[test]
    fn overlong_size_parameter_counts_as_too_big() {
        let Ok(Command::Mail(p)) =
            parse_command(b"MAIL FROM:<a@b.test> SIZE=99999999999999999999999\r\n")
        else {
            panic!("MAIL did not parse");
        };
        assert_eq!(p.size, usize::MAX);
        let Ok(Command::Mail(p)) = parse_command(b"MAIL FROM:<a@b.test> SIZE=1000\r\n") else {
            panic!("MAIL did not parse");
        };
        assert_eq!(p.size, 1000);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(chunks: &[&[u8]], limit: usize) -> (Option<Vec<u8>>, Vec<u8>) {
        let mut body = DataBody::new(limit);
        let mut rest = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            let (used, done) = body.ingest(c);
            if done {
                rest.extend_from_slice(&c[used..]);
                for c in &chunks[i + 1..] {
                    rest.extend_from_slice(c);
                }
                return (body.finish(), rest);
            }
            assert_eq!(used, c.len());
        }
        panic!("end of data not reached");
    }

    #[test]
    fn data_is_unstuffed_and_ends_at_crlf_dot_crlf() {
        let (body, rest) = data(&[b"a\r\n..b\r\n", b".\r\nQUIT\r\n"], 1000);
        assert_eq!(body.unwrap(), b"a\r\n.b\r\n");
        assert_eq!(rest, b"QUIT\r\n");
    }

    #[test]
    fn a_dot_on_the_first_line_ends_an_empty_body() {
        let (body, rest) = data(&[b".\r\nNOOP\r\n"], 1000);
        assert_eq!(body.unwrap(), b"");
        assert_eq!(rest, b"NOOP\r\n");
    }

    #[test]
    fn bare_lf_dot_does_not_end_data() {
        let (body, _) = data(&[b"x\n.\nMAIL FROM:<a@b>\r\n", b"y\r\n.\r\n"], 1000);
        let body = body.unwrap();
        assert!(body.starts_with(b"x\n.\nMAIL FROM"));
        assert!(has_bare_line_ending(&body));
        let (body, _) = data(&[b"x\r\n.\nRCPT\r\n.\r\n"], 1000);
        assert!(has_bare_line_ending(&body.unwrap()));
        let (body, _) = data(&[b"x\n.\r\nRCPT\r\n.\r\n"], 1000);
        assert!(has_bare_line_ending(&body.unwrap()));
    }

    #[test]
    fn oversized_data_is_discarded_but_end_is_still_found() {
        let big = vec![b'a'; 5000];
        let (body, rest) = data(&[&big, b"\r\n.\r\nNOOP\r\n"], 100);
        assert_eq!(body, None);
        assert_eq!(rest, b"NOOP\r\n");
    }

    #[test]
    fn crlf_only_body_has_no_bare_line_ending() {
        assert!(!has_bare_line_ending(b"a\r\nb\r\n\r\n"));
        assert!(has_bare_line_ending(b"a\rb\r\n"));
        assert!(has_bare_line_ending(b"a\r"));
    }

    #[test]
    fn parse_maps_errors_to_kinds() {
        assert_eq!(parse_command(b"FOO\r\n"), Err(CommandError::Unknown));
        assert!(matches!(
            parse_command(b"MAIL FROM:<a@b> SIZE=x\r\n"),
            Err(CommandError::InvalidParameter(_))
        ));
        assert_eq!(
            parse_command(b"BDAT 10 LAST\r\n"),
            Ok(Command::Bdat {
                size: 10,
                last: true
            })
        );
        assert!(matches!(
            parse_command(b"AUTH PLAIN AGFAYg==\r\n"),
            Ok(Command::Auth {
                mechanism: Mechanism::Plain,
                initial_response: Some(_)
            })
        ));
        let Ok(Command::Mail(m)) =
            parse_command(b"MAIL FROM:<a@b.test> SIZE=100 BODY=8BITMIME SMTPUTF8\r\n")
        else {
            panic!("mail not parsed")
        };
        assert_eq!(
            (m.address.as_str(), m.size, m.eight_bit, m.smtputf8),
            ("a@b.test", 100, true, true)
        );
        let Ok(Command::Mail(m)) = parse_command(b"MAIL FROM:<a@b.test> RET=FULL\r\n") else {
            panic!("mail not parsed")
        };
        assert!(m.unsupported.is_some());
    }
}
