//! The wire form of a message in a RETR/TOP response (RFC 1939 §3): every line ends in CRLF,
//! a line that starts with `.` gets another `.` in front ("byte-stuffing"), and the response
//! ends with `.` CRLF. Produced piece by piece ([`DotStuffer::fill`]) so a large message is
//! never copied whole.
//!
//! Stored messages normally end their lines in CRLF already (SMTP refuses bare line
//! endings); one stored with bare LF (an IMAP APPEND) is sent with CRLF line endings, since
//! a client splits lines at LF and a bare-LF line starting with `.` would end the response.

/// Streams the byte-stuffed form of one message.
#[derive(Debug)]
pub struct DotStuffer {
    data: Vec<u8>,
    pos: usize,
    /// Part of the current line was written (a line longer than one piece).
    mid_line: bool,
    /// `TOP`: body lines still to send (`None`: the whole message).
    body_lines_left: Option<u32>,
    in_header: bool,
    finished: bool,
}

impl DotStuffer {
    /// The whole message (RETR).
    pub fn new(data: Vec<u8>) -> Self {
        DotStuffer {
            data,
            pos: 0,
            mid_line: false,
            body_lines_left: None,
            in_header: true,
            finished: false,
        }
    }

    /// The header, the blank line after it and the first `lines` body lines (TOP).
    pub fn top(data: Vec<u8>, lines: u32) -> Self {
        DotStuffer {
            body_lines_left: Some(lines),
            ..DotStuffer::new(data)
        }
    }

    /// Whether the terminating `.` CRLF was written.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Appends to `out` until it holds at least `limit` bytes or the message is done (then
    /// the terminating `.` CRLF is appended too); a long line is cut into pieces, so `out`
    /// never grows far beyond `limit`. Returns whether it is done.
    pub fn fill(&mut self, out: &mut Vec<u8>, limit: usize) -> bool {
        while !self.finished && out.len() < limit {
            let Some(rest) = self.data.get(self.pos..).filter(|r| !r.is_empty()) else {
                self.finish(out);
                break;
            };
            if !self.mid_line {
                if !self.in_header {
                    match self.body_lines_left {
                        Some(0) => {
                            self.finish(out);
                            break;
                        }
                        Some(n) => self.body_lines_left = Some(n - 1),
                        None => {}
                    }
                }
                if self.in_header && (rest.starts_with(b"\n") || rest.starts_with(b"\r\n")) {
                    self.in_header = false;
                }
                if rest.first() == Some(&b'.') {
                    out.push(b'.');
                }
                self.mid_line = true;
            }
            // At least 2, so a piece can always leave a CR for the next one and still move on.
            let room = limit.saturating_sub(out.len()).max(2);
            let window = &rest[..rest.len().min(room)];
            match window.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let line = &rest[..i];
                    out.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
                    out.extend_from_slice(b"\r\n");
                    self.pos += i + 1;
                    self.mid_line = false;
                }
                None if window.len() == rest.len() => {
                    // The last line, without a line ending: a final CR counts as one.
                    out.extend_from_slice(rest.strip_suffix(b"\r").unwrap_or(rest));
                    out.extend_from_slice(b"\r\n");
                    self.pos = self.data.len();
                    self.mid_line = false;
                }
                None => {
                    // Part of a long line; a CR that may start the line ending waits.
                    let take = if window.ends_with(b"\r") {
                        window.len() - 1
                    } else {
                        window.len()
                    };
                    out.extend_from_slice(&rest[..take]);
                    self.pos += take;
                }
            }
        }
        self.finished
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        if self.mid_line {
            out.extend_from_slice(b"\r\n");
            self.mid_line = false;
        }
        out.extend_from_slice(b".\r\n");
        self.finished = true;
    }
}

/// `data` with every line ending made CRLF (a bare LF, or a CR at the very end, counts as
/// one; a last line without one gets CRLF): the message a client reads back.
pub fn crlf_normalized(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 2);
    let mut lines = data.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let last = lines.peek().is_none();
        if last && line.is_empty() {
            break;
        }
        out.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Octets of `data` with every line ending counted as CRLF (RFC 1939 §11: the size "as it
/// would be transmitted", without the byte-stuffing): what `+OK n octets` says. Equals
/// `crlf_normalized(data).len()` without building it.
pub fn wire_size(data: &[u8]) -> u64 {
    let mut size = data.len() as u64;
    let mut prev = 0u8;
    for &b in data {
        if b == b'\n' && prev != b'\r' {
            size += 1;
        }
        prev = b;
    }
    match data.last() {
        None | Some(b'\n') => {}
        Some(b'\r') => size += 1,
        Some(_) => size += 2,
    }
    size
}

/// Undoes the wire form (what a client does): for tests and the fuzz target.
pub fn unstuff(wire: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(wire.len());
    let mut rest = wire;
    loop {
        let i = rest.windows(2).position(|w| w == b"\r\n")?;
        let line = &rest[..i];
        rest = &rest[i + 2..];
        if line == b"." {
            return rest.is_empty().then_some(out);
        }
        out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(mut s: DotStuffer, chunk: usize) -> Vec<u8> {
        let mut wire = Vec::new();
        loop {
            let mut piece = Vec::new();
            let done = s.fill(&mut piece, chunk);
            wire.extend_from_slice(&piece);
            if done {
                return wire;
            }
        }
    }

    #[test]
    fn dots_are_stuffed_and_the_end_is_marked() {
        let msg = b"Subject: x\r\n\r\n.hidden\r\n..two\r\nplain\r\n.\r\n".to_vec();
        let wire = all(DotStuffer::new(msg.clone()), 1);
        assert_eq!(
            wire,
            b"Subject: x\r\n\r\n..hidden\r\n...two\r\nplain\r\n..\r\n.\r\n".to_vec()
        );
        assert_eq!(unstuff(&wire), Some(msg.clone()));
        assert_eq!(wire_size(&msg), msg.len() as u64);
    }

    #[test]
    fn bare_line_endings_become_crlf() {
        let msg = b"A: 1\n\n.x\nlast".to_vec();
        let wire = all(DotStuffer::new(msg.clone()), 1 << 20);
        assert_eq!(wire, b"A: 1\r\n\r\n..x\r\nlast\r\n.\r\n".to_vec());
        assert_eq!(wire_size(&msg), (wire.len() - 3 - 1) as u64);
        assert_eq!(
            unstuff(&wire).map(|v| v.len() as u64),
            Some(wire_size(&msg))
        );
    }

    #[test]
    fn top_sends_header_and_n_body_lines() {
        let msg = b"A: 1\r\nB: 2\r\n\r\nl1\r\n.l2\r\nl3\r\n".to_vec();
        assert_eq!(
            all(DotStuffer::top(msg.clone(), 0), 3),
            b"A: 1\r\nB: 2\r\n\r\n.\r\n".to_vec()
        );
        assert_eq!(
            all(DotStuffer::top(msg.clone(), 2), 3),
            b"A: 1\r\nB: 2\r\n\r\nl1\r\n..l2\r\n.\r\n".to_vec()
        );
        assert_eq!(
            all(DotStuffer::top(msg.clone(), 99), 3),
            all(DotStuffer::new(msg), 3)
        );
        // No blank line: everything is header.
        assert_eq!(
            all(DotStuffer::top(b"A: 1\r\nB\r\n".to_vec(), 0), 1),
            b"A: 1\r\nB\r\n.\r\n".to_vec()
        );
    }

    #[test]
    fn empty_message_is_just_the_terminator() {
        assert_eq!(all(DotStuffer::new(Vec::new()), 10), b".\r\n".to_vec());
        assert_eq!(wire_size(b""), 0);
    }

    #[test]
    fn chunks_stay_near_the_limit() {
        let msg: Vec<u8> = (0..10_000)
            .flat_map(|i| format!("line {i}\r\n").into_bytes())
            .collect();
        let mut s = DotStuffer::new(msg.clone());
        let mut wire = Vec::new();
        while !s.is_finished() {
            let mut piece = Vec::new();
            s.fill(&mut piece, 4096);
            assert!(piece.len() < 4096 + 64, "piece of {} bytes", piece.len());
            wire.extend_from_slice(&piece);
        }
        assert_eq!(unstuff(&wire), Some(msg));
    }

    #[test]
    fn a_long_line_is_cut_without_splitting_its_crlf() {
        let mut msg = vec![b'x'; 10_000];
        msg.extend_from_slice(b"\r\n.y\r");
        for chunk in [2, 3, 7, 4096] {
            let mut s = DotStuffer::new(msg.clone());
            let mut wire = Vec::new();
            while !s.is_finished() {
                let mut piece = Vec::new();
                s.fill(&mut piece, chunk);
                assert!(piece.len() <= chunk + 5, "piece of {} bytes", piece.len());
                wire.extend_from_slice(&piece);
            }
            assert_eq!(unstuff(&wire), Some(crlf_normalized(&msg)));
            assert_eq!(crlf_normalized(&msg).len() as u64, wire_size(&msg));
        }
    }
}
