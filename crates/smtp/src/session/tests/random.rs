//! A stable stand-in for the fuzz target: thousands of pseudo-random inputs.

use super::*;

/// Deterministic pseudo-random bytes (xorshift64*), biased towards SMTP syntax.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn bytes(&mut self) -> Vec<u8> {
        const WORDS: &[&[u8]] = &[
            b"EHLO x\r\n",
            b"HELO x\r\n",
            b"MAIL FROM:<a@b.test>",
            b" SIZE=",
            b" BODY=8BITMIME",
            b"RCPT TO:<alice@example.test>",
            b"RCPT TO:<x@remote.test>",
            b"DATA\r\n",
            b"BDAT ",
            b" LAST\r\n",
            b"\r\n.\r\n",
            b"\r\n",
            b"\n",
            b"\r",
            b".",
            b"AUTH PLAIN ",
            b"AUTH LOGIN\r\n",
            b"STARTTLS\r\n",
            b"RSET\r\n",
            b"QUIT\r\n",
            b"<",
            b">",
            b"@",
            b"\0",
            b"=",
            b"*\r\n",
            b"AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=",
            b"99999999999999999999",
        ];
        let len = (self.next() % 64) as usize;
        let mut v = Vec::new();
        for _ in 0..len {
            let r = self.next();
            if r.is_multiple_of(3) {
                v.extend_from_slice(WORDS[(r >> 8) as usize % WORDS.len()]);
            } else if r % 3 == 1 {
                v.extend_from_slice(format!("{}", (r >> 8) % 2000).as_bytes());
            } else {
                v.push((r >> 8) as u8);
            }
        }
        v
    }
}

#[test]
fn thousands_of_random_inputs_never_panic_and_replies_stay_well_formed() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for round in 0..4000 {
        let kind = [
            ListenerKind::Mx,
            ListenerKind::Submission,
            ListenerKind::Submissions,
        ][round % 3];
        let mut h = Harness::with(cfg(kind), kind == ListenerKind::Submissions);
        // Start from different states: fresh, greeted, inside a transaction, inside DATA.
        match round % 4 {
            0 => {}
            1 => {
                h.send(b"EHLO x\r\n");
            }
            2 => {
                h.send(b"EHLO x\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<alice@example.test>\r\n");
            }
            _ => {
                h.send(
                    b"EHLO x\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n",
                );
            }
        }
        for _ in 0..(rng.next() % 6 + 1) {
            let input = rng.bytes();
            let out = h.send(&input);
            for line in &out {
                let b = line.as_bytes();
                assert!(
                    b.len() >= 3 && b[..3].iter().all(u8::is_ascii_digit),
                    "bad reply {line:?}"
                );
                assert!(!line.contains('\r') && !line.contains('\n'));
            }
            assert!(h.s.input.len() - h.s.start <= input.len() + crate::limits::MAX_AUTH_LINE);
        }
    }
}
