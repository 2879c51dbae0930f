//! Bounded input buffering for line-based protocols (SMTP, POP3): bytes in, whole lines out,
//! and an over-long line reported once and skipped rather than buffered.
//!
//! Memory stays bounded by the line limit plus one read, because protocol sessions take every
//! complete line before they ask for more input.
#![forbid(unsafe_code)]

#[derive(Debug, Default)]
pub struct LineBuffer {
    buf: Vec<u8>,
    max_line: usize,
    /// Inside an over-long line whose end has not arrived yet: drop bytes up to its LF.
    skipping: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line, terminator (LF or CRLF) stripped.
    Complete(Vec<u8>),
    /// A line longer than the limit was discarded (reported once per line).
    TooLong,
}

impl LineBuffer {
    /// `max_line` counts the terminator.
    pub fn new(max_line: usize) -> Self {
        LineBuffer { buf: Vec::new(), max_line, skipping: false }
    }

    pub fn push(&mut self, data: &[u8]) {
        if self.skipping {
            if let Some(end) = data.iter().position(|&b| b == b'\n') {
                self.skipping = false;
                self.buf.extend_from_slice(&data[end + 1..]);
            }
        } else {
            self.buf.extend_from_slice(data);
        }
    }

    /// The next complete line, `None` when more input is needed.
    pub fn next_line(&mut self) -> Option<Line> {
        match self.buf.iter().position(|&b| b == b'\n') {
            Some(end) if end < self.max_line => {
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                Some(Line::Complete(line))
            }
            Some(end) => {
                self.buf.drain(..=end);
                Some(Line::TooLong)
            }
            None if self.buf.len() >= self.max_line => {
                self.buf.clear();
                self.skipping = true;
                Some(Line::TooLong)
            }
            None => None,
        }
    }

    /// Bytes received and not yet taken (for protocols that switch to raw data, like SMTP's
    /// DATA and BDAT).
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    pub fn consume(&mut self, n: usize) {
        self.buf.drain(..n.min(self.buf.len()));
    }

    /// Forgets everything buffered (after STARTTLS nothing sent before the handshake may be
    /// executed after it).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.skipping = false;
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Whether part of a line has arrived (or an over-long line is still being skipped): the
    /// client is in the middle of sending a line.
    pub fn mid_line(&self) -> bool {
        !self.buf.is_empty() || self.skipping
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(s: &str) -> Option<Line> {
        Some(Line::Complete(s.as_bytes().to_vec()))
    }

    #[test]
    fn splits_crlf_and_lf_lines_across_pushes() {
        let mut b = LineBuffer::new(100);
        b.push(b"EHLO a\r\nNO");
        assert_eq!(b.next_line(), complete("EHLO a"));
        assert_eq!(b.next_line(), None);
        b.push(b"OP\nQUIT\r\n");
        assert_eq!(b.next_line(), complete("NOOP"));
        assert_eq!(b.next_line(), complete("QUIT"));
        assert_eq!(b.next_line(), None);
        assert!(b.is_empty());
    }

    #[test]
    fn overlong_lines_are_reported_once_and_skipped() {
        let mut b = LineBuffer::new(10);
        b.push(b"0123456789abcdef");
        assert_eq!(b.next_line(), Some(Line::TooLong));
        assert_eq!(b.next_line(), None);
        b.push(b"still the same line");
        assert_eq!(b.next_line(), None);
        b.push(b"...end\r\nNOOP\r\n");
        assert_eq!(b.next_line(), complete("NOOP"));

        let mut b = LineBuffer::new(10);
        b.push(b"0123456789ab\r\nQUIT\r\n");
        assert_eq!(b.next_line(), Some(Line::TooLong));
        assert_eq!(b.next_line(), complete("QUIT"));
    }

    #[test]
    fn limit_counts_the_terminator() {
        let mut b = LineBuffer::new(6);
        b.push(b"1234\r\n12345\r\n");
        assert_eq!(b.next_line(), complete("1234"));
        assert_eq!(b.next_line(), Some(Line::TooLong));
    }

    #[test]
    fn raw_access_and_clear() {
        let mut b = LineBuffer::new(100);
        b.push(b"abc\r\nrest");
        assert_eq!(b.next_line(), complete("abc"));
        assert_eq!(b.buffered(), b"rest");
        b.consume(2);
        assert_eq!(b.buffered(), b"st");
        b.clear();
        assert!(b.is_empty());
    }

    #[test]
    fn mid_line_while_a_line_or_a_skipped_one_is_unfinished() {
        let mut b = LineBuffer::new(10);
        assert!(!b.mid_line());
        b.push(b"NOOP\r\nQU");
        assert_eq!(b.next_line(), complete("NOOP"));
        assert!(b.mid_line());
        b.push(b"IT\r\n");
        assert_eq!(b.next_line(), complete("QUIT"));
        assert!(!b.mid_line());
        b.push(b"0123456789ab");
        assert_eq!(b.next_line(), Some(Line::TooLong));
        assert!(b.mid_line(), "still skipping the rest of the long line");
        b.push(b"\r\n");
        assert_eq!(b.next_line(), None);
        assert!(!b.mid_line());
    }
}
