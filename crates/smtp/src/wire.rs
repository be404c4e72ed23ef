//! The only module that touches `smtp-proto` (pinned 0.2; its `ingest` signatures changed
//! between releases). It turns one complete command line into a [`Command`] and receives
//! message bodies (DATA with dot-unstuffing, BDAT chunks) with a size cap.
//!
//! Line framing is ours, not smtp-proto's `RequestReceiver`: the session cuts the input at LF,
//! enforces [`crate::limits::MAX_COMMAND_LINE`], and hands each whole line to
//! [`parse_command`], so a malformed command can never leave half a line behind to be read as
//! the next command.

use bulwark_net::Reservation;
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
    /// RFC 4865 `HOLDFOR=` seconds (0: absent).
    pub hold_for: u64,
    /// RFC 4865 `HOLDUNTIL=` as unix seconds (0: absent).
    pub hold_until: u64,
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
        Request::Rcpt { to } => {
            let mut params = rcpt_params(to);
            // smtp-proto returns both `<>` and `<postmaster>` as "". RFC 5321 §4.1.1.3: the
            // forward-path is never empty; §4.5.1: `<Postmaster>` without a domain is valid.
            if params.address.is_empty() {
                if !names_postmaster(line) {
                    return Err(CommandError::BadRecipient);
                }
                params.address = POSTMASTER.to_string();
            }
            Command::Rcpt(params)
        }
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

/// The recipient `<Postmaster>` without a domain, as the session passes it on (RFC 5321
/// §4.5.1: the reserved mailbox, case-insensitive).
pub const POSTMASTER: &str = "postmaster";

/// Whether a RCPT line smtp-proto parsed to an empty address named `<postmaster>`.
fn names_postmaster(line: &[u8]) -> bool {
    line.to_ascii_lowercase()
        .windows(b"<postmaster>".len())
        .any(|w| w == b"<postmaster>")
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
        hold_for: from.hold_for,
        hold_until: from.hold_until,
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
/// consumed and thrown away until the end-of-data marker. The body's memory is reserved from
/// the server's [`MemoryBudget`](bulwark_net::MemoryBudget) before it is allocated; when the
/// budget is used up the rest is thrown away the same way.
///
/// Smuggling: smtp-proto ends DATA only at `<CRLF>.<CRLF>`; a `<LF>.<LF>` or `<LF>.<CRLF>`
/// stays in the body. The session then rejects any body with a bare CR or LF (see
/// [`has_bare_line_ending`]), so such a body is never stored or relayed.
pub struct DataBody {
    receiver: DataSink,
    body: Vec<u8>,
    limit: usize,
    memory: Reservation,
    refused: Option<BodyRefused>,
}

/// A whole body with the memory it holds, or why it was thrown away.
pub type ReceivedBody = Result<(Vec<u8>, Reservation), BodyRefused>;

/// Why a received body was thrown away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRefused {
    /// Larger than the message size limit.
    TooBig,
    /// The memory budget for bodies being received is used up.
    OverBudget,
}

enum DataSink {
    Keep(DataReceiver),
    Discard(DummyDataReceiver),
}

impl DataBody {
    /// `memory` is the reservation the body grows in (it may start empty).
    pub fn new(limit: usize, memory: Reservation) -> Self {
        let mut receiver = DataReceiver::new();
        // The body starts right after the DATA line's CRLF, so a "." on the first line ends it.
        // smtp-proto starts with no previous line; feeding it the CRLF primes that state.
        let mut primer = Vec::new();
        let _ = receiver.ingest(&mut b"\r\n".iter(), &mut primer);
        DataBody {
            receiver: DataSink::Keep(receiver),
            body: Vec::new(),
            limit,
            memory,
            refused: None,
        }
    }

    /// Consumes from `input`; returns the number of octets used and whether the end of data
    /// was reached.
    pub fn ingest(&mut self, input: &[u8]) -> (usize, bool) {
        let mut used = 0;
        while used < input.len() {
            let end = input.len().min(used + BODY_SLICE);
            let slice = &input[used..end];
            if matches!(self.receiver, DataSink::Keep(_)) && !self.make_room(slice.len()) {
                self.refuse(BodyRefused::OverBudget);
            }
            let mut iter = slice.iter();
            let done = match &mut self.receiver {
                DataSink::Keep(rx) => rx.ingest(&mut iter, &mut self.body),
                DataSink::Discard(rx) => rx.ingest(&mut iter),
            };
            used += slice.len() - iter.as_slice().len();
            if matches!(self.receiver, DataSink::Keep(_)) && self.body.len() > self.limit {
                self.refuse(BodyRefused::TooBig);
            }
            if done {
                return (used, true);
            }
        }
        (used, false)
    }

    /// Makes room for `more` octets, reserving the memory first; false when the budget cannot
    /// hold it. The buffer doubles as usual, but never beyond what the size limit needs, and
    /// near the end of the budget it grows by smaller steps rather than failing early.
    fn make_room(&mut self, more: usize) -> bool {
        let need = self.body.len().saturating_add(more);
        let capacity = self.body.capacity();
        if need <= capacity {
            return true;
        }
        let most = self.limit.saturating_add(BODY_SLICE);
        let candidates = [
            capacity.saturating_mul(2),
            need.saturating_add(need / 4),
            need.saturating_add(16 * BODY_SLICE),
            need,
        ];
        for target in candidates.map(|t| t.min(most).max(need)) {
            if self.memory.try_grow_to(target) {
                self.body.reserve_exact(target - self.body.len());
                return true;
            }
        }
        false
    }

    fn refuse(&mut self, why: BodyRefused) {
        if let DataSink::Keep(rx) = &self.receiver {
            self.receiver = DataSink::Discard(DummyDataReceiver::new_data(rx));
        }
        self.body = Vec::new();
        self.refused.get_or_insert(why);
    }

    /// The unstuffed body with the memory it holds, or why it was thrown away.
    pub fn finish(self) -> ReceivedBody {
        match self.refused {
            Some(why) => Err(why),
            None => Ok((self.body, self.memory)),
        }
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
    // Only CRs and LFs matter: jump from one to the next (memchr), not byte by byte.
    memchr::memchr2_iter(b'\r', b'\n', body).any(|i| match body[i] {
        b'\n' => i == 0 || body[i - 1] != b'\r',
        _ => body.get(i + 1) != Some(&b'\n'),
    })
}

#[cfg(test)]
mod size_overflow_tests {
    use super::*;

    #[test]
    fn bare_cr_or_lf_anywhere_is_found() {
        for ok in [&b""[..], b"a", b"a\r\nb\r\n", b"\r\n", b"\r\n\r\n.\r\n"] {
            assert!(!has_bare_line_ending(ok), "{ok:?}");
        }
        for bad in [
            &b"\n"[..],
            b"\r",
            b"a\nb",
            b"a\r\n\n",
            b"a\rb",
            b"a\r",
            b"\n\r\n",
            b"a\r\r\n",
        ] {
            assert!(has_bare_line_ending(bad), "{bad:?}");
        }
    }

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
        let budget = bulwark_net::MemoryBudget::unlimited();
        data_within(chunks, limit, Reservation::empty(&budget)).map_body()
    }

    trait MapBody {
        fn map_body(self) -> (Option<Vec<u8>>, Vec<u8>);
    }
    impl MapBody for (ReceivedBody, Vec<u8>) {
        fn map_body(self) -> (Option<Vec<u8>>, Vec<u8>) {
            (self.0.ok().map(|(b, _)| b), self.1)
        }
    }

    fn data_within(chunks: &[&[u8]], limit: usize, memory: Reservation) -> (ReceivedBody, Vec<u8>) {
        let mut body = DataBody::new(limit, memory);
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
    fn a_body_beyond_the_memory_budget_is_thrown_away_and_its_memory_given_back() {
        let budget = bulwark_net::MemoryBudget::new(3000);
        let big = vec![b'a'; 5000];
        let (end, rest) = data_within(
            &[&big, b"\r\n.\r\nNOOP\r\n"],
            10_000,
            Reservation::empty(&budget),
        );
        assert_eq!(end.err(), Some(BodyRefused::OverBudget));
        assert_eq!(rest, b"NOOP\r\n");
        assert_eq!(budget.in_use(), 0);
        let (end, _) = data_within(&[b"small\r\n.\r\n"], 10_000, Reservation::empty(&budget));
        let (body, memory) = end.expect("fits");
        assert_eq!(body, b"small\r\n");
        assert!(memory.held() >= body.len() && budget.in_use() == memory.held());
    }

    #[test]
    fn crlf_only_body_has_no_bare_line_ending() {
        assert!(!has_bare_line_ending(b"a\r\nb\r\n\r\n"));
        assert!(has_bare_line_ending(b"a\rb\r\n"));
        assert!(has_bare_line_ending(b"a\r"));
    }

    #[test]
    fn bare_postmaster_is_a_recipient_and_an_empty_forward_path_is_not() {
        for line in [
            &b"RCPT TO:<postmaster>\r\n"[..],
            b"RCPT TO:<PostMaster>\r\n",
        ] {
            let Ok(Command::Rcpt(p)) = parse_command(line) else {
                panic!("{}", String::from_utf8_lossy(line));
            };
            assert_eq!(p.address, POSTMASTER);
        }
        assert_eq!(
            parse_command(b"RCPT TO:<>\r\n"),
            Err(CommandError::BadRecipient)
        );
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
