//! Deterministic test messages. Every message is plain RFC 5322 text with CRLF line ends,
//! no line starting with "." (so SMTP DATA needs no dot-stuffing), and searchable markers:
//! 1 in [`MARKER_EVERY`] messages has the subject word `needle`, the sender
//! `rare-sender@example.org` and the body word `zebracorn`.

/// One message in this many carries the search markers.
pub const MARKER_EVERY: u64 = 100;
pub const SUBJECT_MARKER: &str = "needle";
pub const FROM_MARKER: &str = "rare-sender";
pub const BODY_MARKER: &str = "zebracorn";

const WORDS: &[&str] = &[
    "alpha", "budget", "meeting", "report", "quarter", "status", "project", "review", "draft",
    "invoice", "schedule", "update", "release", "network", "storage", "customer", "design",
    "weekly", "summary", "question", "answer", "travel", "office", "lunch", "deadline",
];

/// Message number `n` of about `size` bytes, addressed to `to`.
pub fn build(n: u64, size: usize, to: &str) -> Vec<u8> {
    let marked = n % MARKER_EVERY == 7;
    let from = if marked {
        format!("Rare Sender <{FROM_MARKER}@example.org>")
    } else {
        format!("Sender {} <sender{}@example.net>", n % 1000, n % 1000)
    };
    let subject_word = if marked {
        SUBJECT_MARKER
    } else {
        WORDS[(n as usize * 7) % WORDS.len()]
    };
    let mut out = format!(
        "From: {from}\r\nTo: <{to}>\r\nSubject: Bench message {n} about {subject_word}\r\n\
         Date: Mon, 6 Jan 2025 10:{:02}:{:02} +0000\r\nMessage-ID: <bench.{n}.{}@bench.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n",
        (n / 60) % 60,
        n % 60,
        std::process::id(),
    )
    .into_bytes();
    if marked {
        out.extend_from_slice(format!("The secret word is {BODY_MARKER}.\r\n").as_bytes());
    }
    let mut i = n as usize;
    while out.len() + 2 < size {
        let mut line = String::with_capacity(80);
        while line.len() < 70 {
            line.push_str(WORDS[i % WORDS.len()]);
            line.push(' ');
            i = i.wrapping_mul(31).wrapping_add(17);
        }
        line.push_str("\r\n");
        out.extend_from_slice(line.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_is_close_to_requested_size_and_crlf_terminated() {
        let m = build(3, 5000, "u0@example.test");
        assert!(m.len() >= 4998 && m.len() < 5100, "len {}", m.len());
        assert!(m.ends_with(b"\r\n"));
        assert!(!m.windows(3).any(|w| w == b"\n.."));
        assert!(!m.windows(2).any(|w| w == b"\n."));
    }

    #[test]
    fn markers_appear_once_per_hundred() {
        let marked = (0..1000u64)
            .filter(|n| {
                let m = String::from_utf8(build(*n, 300, "x@y.test")).unwrap_or_default();
                m.contains(SUBJECT_MARKER) && m.contains(FROM_MARKER) && m.contains(BODY_MARKER)
            })
            .count();
        assert_eq!(marked, 10);
    }
}
