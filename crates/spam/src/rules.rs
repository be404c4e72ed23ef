//! The content and header rules: each that matches adds its weight (whole points; the
//! thresholds are in the same unit). Pure functions of the message, so they are tested
//! and fuzzed without a network.

use mail_parser::{HeaderName, MessageParser};

/// The GTUBE test string (Apache SpamAssassin's Generic Test for Unsolicited Bulk Email):
/// any filter must treat a message carrying it as spam.
pub const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

/// Phrases of credential phishing ("your account will be suspended…"), lowercase.
const PHISHING_PHRASES: &[&str] = &[
    "verify your account",
    "confirm your account",
    "your account will be suspended",
    "your account has been suspended",
    "your password will expire",
    "update your payment information",
    "unusual sign-in activity",
    "validate your mailbox",
];

/// Largest part of a message the content rules read (the rest cannot add points).
const MAX_SCANNED: usize = 512 * 1024;

/// A message's score and the rules that made it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Score {
    pub total: i32,
    pub rules: Vec<(&'static str, i32)>,
}

impl Score {
    pub fn add(&mut self, rule: &'static str, points: i32) {
        self.total = self.total.saturating_add(points);
        self.rules.push((rule, points));
    }

    /// `GTUBE=1000,DMARC_FAIL=4` (for the header field and the log).
    pub fn tests(&self) -> String {
        self.rules
            .iter()
            .map(|(r, p)| format!("{r}={p}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Scores `raw` with the `Authentication-Results` field values the trust stage wrote
/// (`auth`, may be empty).
pub fn score_message(raw: &[u8], auth: &[String]) -> Score {
    let raw = &raw[..raw.len().min(MAX_SCANNED)];
    let mut score = Score::default();
    let text = String::from_utf8_lossy(raw);
    if text.contains(GTUBE) {
        score.add("GTUBE", 1000);
    }
    auth_rules(auth, &mut score);
    let Some(msg) = MessageParser::default().parse(raw) else {
        score.add("UNPARSABLE", 3);
        return score;
    };
    if msg.header(HeaderName::Date).is_none() {
        score.add("MISSING_DATE", 1);
    }
    if msg.header(HeaderName::MessageId).is_none() {
        score.add("MISSING_MESSAGE_ID", 1);
    }
    if let Some(subject) = msg.subject() {
        let letters: Vec<char> = subject.chars().filter(|c| c.is_alphabetic()).collect();
        if letters.len() >= 10 && letters.iter().all(|c| c.is_uppercase()) {
            score.add("SUBJECT_ALL_CAPS", 1);
        }
    }
    let from = msg.from().and_then(|a| a.first());
    let from_addr = from
        .and_then(|a| a.address())
        .unwrap_or("")
        .to_ascii_lowercase();
    let from_domain = from_addr
        .rsplit_once('@')
        .map(|(_, d)| d.to_string())
        .unwrap_or_default();
    if from.is_none() {
        score.add("MISSING_FROM", 1);
    }
    if let Some(name) = from.and_then(|a| a.name()) {
        // "support@yourbank.example" <x@elsewhere.test>: the name shows another address.
        if let Some(shown) = address_in(name)
            && !from_domain.is_empty()
            && !shown.ends_with(&format!("@{from_domain}"))
        {
            score.add("FROM_NAME_OTHER_ADDRESS", 3);
        }
        if mixed_scripts(name) {
            score.add("FROM_NAME_MIXED_SCRIPT", 2);
        }
    }
    if from_domain.split('.').any(|l| l.starts_with("xn--")) || !from_domain.is_ascii() {
        score.add("FROM_IDN_DOMAIN", 2);
    }
    if let Some(reply) = msg
        .reply_to()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
    {
        let reply = reply.to_ascii_lowercase();
        let reply_domain = reply.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        if !from_domain.is_empty() && reply_domain != from_domain {
            score.add("REPLY_TO_ELSEWHERE", 1);
        }
    }
    let body = msg
        .body_text(0)
        .map(|b| b.to_lowercase())
        .unwrap_or_default();
    if PHISHING_PHRASES.iter().any(|p| body.contains(p)) {
        score.add("PHISHING_WORDING", 2);
    }
    score
}

/// Points from the `Authentication-Results` methods (RFC 8601 §2.7).
fn auth_rules(auth: &[String], score: &mut Score) {
    let all = auth.join(" ").to_ascii_lowercase();
    if all.is_empty() {
        return;
    }
    if all.contains("dmarc=fail") {
        score.add("DMARC_FAIL", 4);
    }
    if all.contains("spf=fail") {
        score.add("SPF_FAIL", 3);
    } else if all.contains("spf=softfail") {
        score.add("SPF_SOFTFAIL", 1);
    }
    if all.contains("dkim=fail") {
        score.add("DKIM_FAIL", 2);
    }
    if !all.contains("dkim=pass") && !all.contains("spf=pass") {
        score.add("NOT_AUTHENTICATED", 1);
    }
    if all.contains("x-bulwark=local-domain-unauthenticated") {
        score.add("LOCAL_DOMAIN_UNAUTHENTICATED", 3);
    }
}

/// The first `local@domain` inside a display name.
fn address_in(name: &str) -> Option<String> {
    name.split(|c: char| c.is_whitespace() || "<>()\"',;".contains(c))
        .find(|w| {
            let w = w.trim_matches('.');
            w.contains('@')
                && w.rsplit_once('@')
                    .is_some_and(|(l, d)| !l.is_empty() && d.contains('.'))
        })
        .map(|w| w.trim_matches('.').to_ascii_lowercase())
}

/// Latin letters mixed with Cyrillic or Greek ones in one word (`Pаypal` with a Cyrillic а).
fn mixed_scripts(name: &str) -> bool {
    name.split_whitespace().any(|word| {
        let latin = word.chars().any(|c| c.is_ascii_alphabetic());
        let other = word.chars().any(|c| matches!(c as u32, 0x0370..=0x04FF)); // Greek and Cyrillic
        latin && other
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(headers: &str, body: &str) -> Vec<u8> {
        format!("{headers}\r\n\r\n{body}\r\n").into_bytes()
    }

    #[test]
    fn gtube_is_spam_whatever_else() {
        let s = score_message(
            &msg("From: a@b.test\r\nDate: x\r\nMessage-ID: <1@b>", GTUBE),
            &[],
        );
        assert!(s.total >= 1000, "{s:?}");
        assert_eq!(s.rules[0].0, "GTUBE");
    }

    #[test]
    fn an_ordinary_message_scores_nothing() {
        let s = score_message(
            &msg(
                "From: Alice <alice@example.org>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <1@example.org>\r\nSubject: Lunch tomorrow?",
                "Shall we meet at noon?",
            ),
            &["mx.example.test; spf=pass smtp.mailfrom=example.org; dkim=pass header.d=example.org".into()],
        );
        assert_eq!(s, Score::default());
    }

    #[test]
    fn phishing_signals_add_up() {
        let s = score_message(
            &msg(
                "From: \"security@bank.example\" <alerts@xn--bnk-sna.test>\r\nReply-To: collect@elsewhere.test\r\nSubject: URGENT ACCOUNT NOTICE",
                "Please verify your account within 24 hours.",
            ),
            &["mx.example.test; spf=fail; dkim=none; dmarc=fail".into()],
        );
        let names: Vec<&str> = s.rules.iter().map(|(r, _)| *r).collect();
        for r in [
            "DMARC_FAIL",
            "SPF_FAIL",
            "NOT_AUTHENTICATED",
            "MISSING_DATE",
            "MISSING_MESSAGE_ID",
            "SUBJECT_ALL_CAPS",
            "FROM_NAME_OTHER_ADDRESS",
            "FROM_IDN_DOMAIN",
            "REPLY_TO_ELSEWHERE",
            "PHISHING_WORDING",
        ] {
            assert!(names.contains(&r), "{r} missing from {names:?}");
        }
        assert!(s.total >= 15, "{s:?}");
        let mixed = score_message(
            &msg(
                "From: Pаypal <service@pay.test>\r\nDate: x\r\nMessage-ID: <1@p>",
                "hi",
            ),
            &[],
        );
        assert!(
            mixed
                .rules
                .iter()
                .any(|(r, _)| *r == "FROM_NAME_MIXED_SCRIPT"),
            "{mixed:?}"
        );
    }

    #[test]
    fn hostile_bytes_do_not_panic() {
        for raw in [
            &b""[..],
            b"\xff\xfe\r\n\r\n",
            b"From: <@>\r\n\r\n",
            b"From: \"a@\" <b>\r\n\r\n",
        ] {
            let _ = score_message(raw, &["".into()]);
        }
    }
}
