//! Pseudo-random robustness: mutated messages must never panic (fixed seed, reproducible).

use super::samples::*;
use super::*;

/// xorshift64: deterministic, dependency-free.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that tend to hit parser edge cases.
const INTERESTING: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b"--",
    b"--outer",
    b"--alt--",
    b"--A",
    b"--B--",
    b":",
    b";",
    b"\"",
    b"(",
    b")",
    b"<",
    b">",
    b"@",
    b",",
    b"=?",
    b"?=",
    b"=",
    b"[",
    b"]",
    b"\0",
    b"\xff",
    b" ",
    b"\t",
    b"Content-Type: multipart/mixed; boundary=outer\r\n",
    b"Content-Type: message/rfc822\r\n\r\n",
    b"Content-Transfer-Encoding: base64\r\n",
    b"=?utf-8?B?",
    b"\r\n\r\n",
];

fn mutate(rng: &mut XorShift, base: &[u8]) -> Vec<u8> {
    let mut m = base.to_vec();
    for _ in 0..=rng.below(8) {
        let pos = rng.below(m.len() + 1);
        match rng.below(5) {
            0 => {
                if pos < m.len() {
                    m[pos] = rng.next() as u8;
                }
            }
            1 => {
                let end = (pos + rng.below(40)).min(m.len());
                m.drain(pos..end);
            }
            2 => {
                let ins = INTERESTING[rng.below(INTERESTING.len())];
                m.splice(pos..pos, ins.iter().copied());
            }
            3 => {
                let start = rng.below(m.len() + 1);
                let end = (start + rng.below(200)).min(m.len());
                let chunk = m[start..end].to_vec();
                m.splice(pos..pos, chunk);
            }
            _ => m.truncate(pos),
        }
    }
    m
}

fn exercise(raw: &[u8]) {
    let _ = envelope(raw);
    let bs = body_structure(raw, true);
    assert!(bs.starts_with(b"(") && bs.ends_with(b")"));
    let _ = body_structure(raw, false);
    for part in [&[][..], &[1], &[2], &[1, 1], &[2, 1], &[3, 1], &[3, 2]] {
        for text in [
            None,
            Some(SectionText::Header),
            Some(SectionText::Text),
            Some(SectionText::Mime),
        ] {
            let s = Section {
                part: part.to_vec(),
                text,
            };
            if let Some(bytes) = section(raw, &s) {
                let _ = partial(&bytes, 3, Some(7));
            }
        }
        let _ = binary(raw, part);
    }
    let s = Section {
        part: vec![],
        text: Some(SectionText::HeaderFields {
            not: true,
            fields: vec!["subject".into()],
        }),
    };
    let _ = section(raw, &s);
    let v = search_view(raw);
    let _ = (
        v.header_contains("subject", "x"),
        v.body_contains("é"),
        v.text_contains("a"),
    );
    let _ = (
        v.subject(),
        v.from(),
        v.display_to(),
        v.sent_day(),
        v.references(),
    );
}

#[test]
fn mutated_messages_never_panic() {
    let bases: [&[u8]; 5] = [
        PLAIN.as_bytes(),
        ALTERNATIVE.as_bytes(),
        MIXED.as_bytes(),
        NESTED_MULTIPART.as_bytes(),
        LATIN1_LF,
    ];
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for i in 0..4000 {
        let base = bases[i % bases.len()];
        let m = mutate(&mut rng, base);
        exercise(&m);
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = XorShift(42);
    for _ in 0..500 {
        let len = rng.below(300);
        let raw: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        exercise(&raw);
    }
    for s in [
        "",
        "\r\n",
        "\n\n",
        ":",
        "a:",
        "From: (((",
        "Subject: =?",
        "To: \"",
        "To: <",
        "Cc: a:b:c;;;",
    ] {
        exercise(s.as_bytes());
    }
}
