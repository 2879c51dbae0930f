//! SMTP replies as the client reads them (RFC 5321 §4.2): a three-digit code, an optional
//! enhanced status code (RFC 3463, announced by ENHANCEDSTATUSCODES, RFC 2034), and the text
//! lines. The reader is bounded in line length, lines per reply and bytes per reply, because
//! the other side is any server on the Internet: a banner of a megabyte or a multiline reply
//! that never ends must cost a bounded amount of memory and end the session, not grow.

use std::fmt;

/// The bounds on what one reply may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyLimits {
    /// Octets of one reply line, CRLF included. RFC 5321 §4.5.3.1.5 says 512; real servers
    /// send longer lines (long EHLO keywords, long rejection texts), so the default is larger.
    pub max_line: usize,
    /// Lines of one reply (an EHLO reply has one per extension: a few dozen at most).
    pub max_lines: usize,
    /// Octets of one reply, all lines together.
    pub max_bytes: usize,
}

impl Default for ReplyLimits {
    fn default() -> Self {
        ReplyLimits { max_line: 2048, max_lines: 100, max_bytes: 64 * 1024 }
    }
}

/// One complete reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// The RFC 3463 code at the start of the first line, when its class matches the code's.
    pub enhanced: Option<EnhancedCode>,
    /// The text of each line after "NNN-" / "NNN ", control characters replaced by '?',
    /// invalid UTF-8 replaced (the text ends up in logs and in bounce messages).
    pub lines: Vec<String>,
}

/// An enhanced mail system status code, "class.subject.detail" (RFC 3463 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnhancedCode {
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

/// What the first digit of a code says (RFC 5321 §4.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyClass {
    /// 2yz: done.
    Positive,
    /// 3yz: go on (354 after DATA, 334 in AUTH).
    Intermediate,
    /// 4yz: not now; the same command may succeed later.
    Transient,
    /// 5yz: never.
    Permanent,
}

/// Why reading a reply failed. Each ends the session: what follows cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    LineTooLong,
    TooManyLines,
    TooManyBytes,
    /// Not "NNN", "NNN text" or "NNN-text", or the lines of one reply disagree on the code.
    Malformed(String),
}

impl EnhancedCode {
    pub const fn new(class: u8, subject: u16, detail: u16) -> EnhancedCode {
        EnhancedCode { class, subject, detail }
    }

    /// Parses "X.Y.Z" (RFC 3463 §2: class 2, 4 or 5; subject and detail up to three digits).
    pub fn parse(text: &str) -> Option<EnhancedCode> {
        let mut parts = text.split('.');
        let (class, subject, detail) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let number = |s: &str, max: usize| {
            (!s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse::<u16>().ok())?
        };
        let class = number(class, 1)?;
        if !matches!(class, 2 | 4 | 5) {
            return None;
        }
        Some(EnhancedCode { class: class as u8, subject: number(subject, 3)?, detail: number(detail, 3)? })
    }
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

impl Reply {
    pub fn class(&self) -> ReplyClass {
        match self.code / 100 {
            2 => ReplyClass::Positive,
            3 => ReplyClass::Intermediate,
            4 => ReplyClass::Transient,
            _ => ReplyClass::Permanent,
        }
    }

    pub fn is_positive(&self) -> bool {
        self.class() == ReplyClass::Positive
    }

    /// The enhanced code, or the one RFC 3463 §3 implies for the basic code's class
    /// (X.0.0) when the server sent none.
    pub fn status(&self) -> EnhancedCode {
        self.enhanced.unwrap_or(match self.class() {
            ReplyClass::Positive | ReplyClass::Intermediate => EnhancedCode::new(2, 0, 0),
            ReplyClass::Transient => EnhancedCode::new(4, 0, 0),
            ReplyClass::Permanent => EnhancedCode::new(5, 0, 0),
        })
    }

    /// The reply on one line, as a bounce's Diagnostic-Code shows it (RFC 3464 §2.3.6):
    /// "550 5.1.1 text text", the lines joined by spaces.
    pub fn one_line(&self) -> String {
        let mut text = self.code.to_string();
        for line in &self.lines {
            if !line.is_empty() {
                text.push(' ');
                text.push_str(line);
            }
        }
        text
    }

    /// The first line's text.
    pub fn text(&self) -> &str {
        self.lines.first().map_or("", String::as_str)
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.one_line())
    }
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::LineTooLong => f.write_str("a reply line is too long"),
            ReplyError::TooManyLines => f.write_str("a reply has too many lines"),
            ReplyError::TooManyBytes => f.write_str("a reply is too big"),
            ReplyError::Malformed(line) => write!(f, "malformed reply line {line:?}"),
        }
    }
}

/// Bytes in, complete replies out.
#[derive(Debug)]
pub struct ReplyReader {
    limits: ReplyLimits,
    buf: Vec<u8>,
    /// The lines of the reply being read (all but its last line have arrived).
    lines: Vec<String>,
    code: Option<u16>,
    bytes: usize,
    /// After an error nothing more is parsed.
    failed: bool,
}

impl ReplyReader {
    pub fn new(limits: ReplyLimits) -> ReplyReader {
        ReplyReader { limits, buf: Vec::new(), lines: Vec::new(), code: None, bytes: 0, failed: false }
    }

    pub fn push(&mut self, data: &[u8]) {
        if !self.failed {
            self.buf.extend_from_slice(data);
        }
    }

    /// Forgets everything received and not yet parsed (after STARTTLS: RFC 3207 §4.2 says
    /// nothing from before the handshake counts).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.lines.clear();
        self.code = None;
        self.bytes = 0;
    }

    /// Whether bytes of a reply not yet complete have arrived.
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty() || !self.lines.is_empty()
    }

    /// The next complete reply; `None` when more input is needed. After an error, every
    /// later call returns the same error.
    pub fn next_reply(&mut self) -> Option<Result<Reply, ReplyError>> {
        loop {
            if self.failed {
                return Some(Err(ReplyError::Malformed("input after a bad reply".into())));
            }
            let Some(end) = self.buf.iter().position(|&b| b == b'\n') else {
                if self.buf.len() >= self.limits.max_line {
                    return Some(self.fail(ReplyError::LineTooLong));
                }
                return None;
            };
            if end + 1 > self.limits.max_line {
                return Some(self.fail(ReplyError::LineTooLong));
            }
            self.bytes += end + 1;
            if self.bytes > self.limits.max_bytes {
                return Some(self.fail(ReplyError::TooManyBytes));
            }
            let raw: Vec<u8> = self.buf.drain(..=end).collect();
            let line = raw.strip_suffix(b"\n").unwrap_or(&raw);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            match self.take_line(line) {
                Err(err) => return Some(self.fail(err)),
                Ok(Some(reply)) => return Some(Ok(reply)),
                Ok(None) => {
                    if self.lines.len() >= self.limits.max_lines {
                        return Some(self.fail(ReplyError::TooManyLines));
                    }
                }
            }
        }
    }

    fn fail(&mut self, err: ReplyError) -> Result<Reply, ReplyError> {
        self.failed = true;
        self.buf = Vec::new();
        self.lines = Vec::new();
        Err(err)
    }

    /// One line: `Ok(Some)` when it was the last of its reply.
    fn take_line(&mut self, line: &[u8]) -> Result<Option<Reply>, ReplyError> {
        let malformed = || ReplyError::Malformed(printable(&line[..line.len().min(80)]));
        // RFC 5321 §4.2: Reply-code = %x32-35 %x30-35 %x30-39.
        let code_ok = line.len() >= 3
            && (b'2'..=b'5').contains(&line[0])
            && (b'0'..=b'5').contains(&line[1])
            && line[2].is_ascii_digit();
        if !code_ok {
            return Err(malformed());
        }
        let code = u16::from(line[0] - b'0') * 100 + u16::from(line[1] - b'0') * 10 + u16::from(line[2] - b'0');
        let (last, text) = match line.get(3) {
            None => (true, &b""[..]),
            Some(b' ') => (true, &line[4..]),
            Some(b'-') => (false, &line[4..]),
            Some(_) => return Err(malformed()),
        };
        // RFC 5321 §4.2.1: every line of a multiline reply carries the same code.
        if self.code.is_some_and(|c| c != code) {
            return Err(malformed());
        }
        self.code = Some(code);
        self.lines.push(printable(text));
        if !last {
            return Ok(None);
        }
        let lines = std::mem::take(&mut self.lines);
        self.code = None;
        self.bytes = 0;
        let enhanced = lines
            .first()
            .and_then(|first| first.split(' ').next())
            .and_then(EnhancedCode::parse)
            .filter(|e| u16::from(e.class) == code / 100); // RFC 3463 §2: the classes agree
        Ok(Some(Reply { code, enhanced, lines }))
    }
}

/// Text safe to log and to quote in a bounce: UTF-8 (lossy), control characters as '?'.
fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &[u8], limits: ReplyLimits) -> Vec<Result<Reply, ReplyError>> {
        let mut reader = ReplyReader::new(limits);
        reader.push(input);
        let mut out = Vec::new();
        while let Some(r) = reader.next_reply() {
            let stop = r.is_err();
            out.push(r);
            if stop {
                break;
            }
        }
        out
    }

    #[test]
    fn single_and_multiline_replies_with_enhanced_codes() {
        let replies = read_all(
            b"220 mx.example ESMTP\r\n250-mx.example\r\n250-SIZE 1000\r\n250 STARTTLS\r\n550 5.1.1 <a@b>: no such user\r\n",
            ReplyLimits::default(),
        );
        let replies: Vec<Reply> = replies.into_iter().map(Result::unwrap).collect();
        assert_eq!(replies.len(), 3);
        assert_eq!(replies[0].code, 220);
        assert_eq!(replies[0].enhanced, None);
        assert_eq!(replies[1].lines, ["mx.example", "SIZE 1000", "STARTTLS"]);
        assert_eq!(replies[2].enhanced, Some(EnhancedCode::new(5, 1, 1)));
        assert_eq!(replies[2].class(), ReplyClass::Permanent);
        assert_eq!(replies[2].one_line(), "550 5.1.1 <a@b>: no such user");
    }

    #[test]
    fn a_reply_split_anywhere_is_the_same_reply() {
        let input = b"250-first\r\n250 second\r\n";
        for split in 0..input.len() {
            let mut reader = ReplyReader::new(ReplyLimits::default());
            reader.push(&input[..split]);
            let early = reader.next_reply();
            reader.push(&input[split..]);
            let reply = early.or_else(|| reader.next_reply()).unwrap().unwrap();
            assert_eq!(reply.lines, ["first", "second"], "split at {split}");
        }
    }

    #[test]
    fn bare_code_and_bare_lf_are_accepted() {
        let replies = read_all(b"250\n", ReplyLimits::default());
        assert_eq!(replies[0].as_ref().unwrap().code, 250);
    }

    #[test]
    fn an_enhanced_code_of_another_class_is_ignored() {
        let reply = read_all(b"450 5.1.1 odd\r\n", ReplyLimits::default()).remove(0).unwrap();
        assert_eq!(reply.enhanced, None);
        assert_eq!(reply.status(), EnhancedCode::new(4, 0, 0));
    }

    #[test]
    fn garbage_and_mixed_codes_are_malformed() {
        for bad in [&b"hello\r\n"[..], b"25\r\n", b"250x\r\n", b"650 no\r\n", b"250-a\r\n251 b\r\n", b"\r\n"] {
            let replies = read_all(bad, ReplyLimits::default());
            assert!(matches!(replies.last(), Some(Err(ReplyError::Malformed(_)))), "{bad:?}: {replies:?}");
        }
    }

    #[test]
    fn every_bound_holds() {
        let limits = ReplyLimits { max_line: 100, max_lines: 5, max_bytes: 300 };
        // A line without end: stopped at the line limit, however much more comes.
        let mut reader = ReplyReader::new(limits);
        reader.push(&[b'2'; 99]);
        assert_eq!(reader.next_reply(), None);
        reader.push(b"2");
        assert_eq!(reader.next_reply(), Some(Err(ReplyError::LineTooLong)));
        reader.push(&[b'x'; 10_000]);
        assert!(reader.buf.is_empty(), "nothing is kept after an error");
        // Endless continuation lines.
        let endless: Vec<u8> = b"250-x\r\n".repeat(50);
        assert_eq!(read_all(&endless, limits).last(), Some(&Err(ReplyError::TooManyLines)));
        // Few but long lines.
        let long_line = format!("250-{}\r\n", "y".repeat(90));
        let long: Vec<u8> = long_line.as_bytes().repeat(4);
        assert_eq!(read_all(&long, limits).last(), Some(&Err(ReplyError::TooManyBytes)));
    }

    #[test]
    fn control_characters_never_reach_the_text() {
        let reply = read_all(b"550 bad\x1b[31m\x00text\r\n", ReplyLimits::default()).remove(0).unwrap();
        assert_eq!(reply.text(), "bad?[31m?text");
    }
}
