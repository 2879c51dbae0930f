//! Framing: cutting the input into whole commands, literals included (RFC 9051 §4.3, §7.5;
//! RFC 7888 LITERAL+). A command is complete when a line ends without announcing a literal.
//! Sizes are bounded: an APPEND literal by the message size limit (once the client has logged
//! in; before, by the command size limit like everything else), everything else by the command
//! size limit, so that memory never grows with what a client sends.

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A whole command, literals included, except APPEND's message literal.
    pub max_command: usize,
    /// The message literal of APPEND (APPENDLIMIT).
    pub max_append: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete command: its lines and literals as received.
    Command(Vec<u8>),
    /// The client announced a synchronizing literal: send a continuation request ("+ ...").
    Continue,
    /// The command broke a limit and was dropped. Answer with the tag (when it is known);
    /// `close` when the rest of it cannot be skipped (a non-synchronizing literal is coming).
    Refused { tag: Option<String>, reason: Refusal, close: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    CommandTooLong,
    LiteralTooBig,
}

#[derive(Debug)]
pub struct Framer {
    limits: Limits,
    input: Vec<u8>,
    command: Vec<u8>,
    /// Bytes of the current literal still to come.
    literal_left: u64,
    /// Bytes of `command` that are APPEND's message literal, which the command limit does not
    /// count.
    exempt: usize,
    /// The literal being read is APPEND's message literal (the one literal of a command that
    /// the command limit does not count).
    literal_exempt: bool,
    /// Inside a line that was too long: drop input up to its end.
    skipping: bool,
    /// The client has logged in: APPEND's message literal may exceed the command limit.
    /// Before that, nobody may make the server hold up to `max_append` bytes.
    logged_in: bool,
}

impl Framer {
    pub fn new(limits: Limits) -> Framer {
        Framer {
            limits,
            input: Vec::new(),
            command: Vec::new(),
            literal_left: 0,
            exempt: 0,
            literal_exempt: false,
            skipping: false,
            logged_in: false,
        }
    }

    /// The client has logged in: from now on APPEND's message literal is bounded by
    /// `max_append` rather than by the command limit.
    pub fn logged_in(&mut self) {
        self.logged_in = true;
    }

    pub fn push(&mut self, data: &[u8]) {
        self.input.extend_from_slice(data);
    }

    /// Whether a command has been started but not finished.
    pub fn in_command(&self) -> bool {
        !self.command.is_empty() || self.literal_left > 0
    }

    /// The next frame, `None` when more input is needed.
    pub fn next_frame(&mut self) -> Option<Frame> {
        loop {
            if !self.skip_to_line_end() {
                return None;
            }
            if self.literal_left > 0 {
                if self.input.is_empty() {
                    return None;
                }
                let n = self.literal_left.min(self.input.len() as u64) as usize;
                self.command.extend(self.input.drain(..n));
                if self.literal_exempt {
                    self.exempt += n;
                }
                self.literal_left -= n as u64;
                continue;
            }
            let counted = self.command.len() - self.exempt;
            let Some(end) = self.input.iter().position(|&b| b == b'\n') else {
                if counted + self.input.len() > self.limits.max_command {
                    let tag = tag_of(if self.command.is_empty() { &self.input } else { &self.command });
                    self.input.clear();
                    self.command.clear();
                    self.exempt = 0;
                    self.skipping = true;
                    return Some(Frame::Refused { tag, reason: Refusal::CommandTooLong, close: false });
                }
                return None;
            };
            if counted + end + 1 > self.limits.max_command {
                let tag = tag_of(if self.command.is_empty() { &self.input } else { &self.command });
                self.input.drain(..=end);
                self.command.clear();
                self.exempt = 0;
                return Some(Frame::Refused { tag, reason: Refusal::CommandTooLong, close: false });
            }
            self.command.extend(self.input.drain(..=end));
            let Some((size, synchronizing)) = announced_literal(&self.command) else {
                self.exempt = 0;
                return Some(Frame::Command(std::mem::take(&mut self.command)));
            };
            // Only one literal of an APPEND, the message, may go beyond the command limit (a
            // small one is simply counted): a command holding many message-sized literals
            // would otherwise make the server hold many times `max_append`.
            let room = self.limits.max_command.saturating_sub(self.command.len() - self.exempt) as u64;
            self.literal_exempt = size > room && self.exempt == 0 && self.append_literal();
            let room = if self.literal_exempt { self.limits.max_append } else { room };
            if size > room {
                let tag = tag_of(&self.command);
                self.command.clear();
                self.exempt = 0;
                // Without a continuation request the client never sends a synchronizing
                // literal; a non-synchronizing one is on its way and cannot be told apart
                // from commands, so the connection has to go.
                return Some(Frame::Refused { tag, reason: Refusal::LiteralTooBig, close: !synchronizing });
            }
            self.literal_left = size;
            if synchronizing {
                return Some(Frame::Continue);
            }
        }
    }

    /// One raw line (IDLE's DONE, a SASL response), `None` when more input is needed.
    /// `Some(Err(()))` for a line longer than the command limit (dropped).
    pub fn next_line(&mut self) -> Option<Result<Vec<u8>, ()>> {
        debug_assert!(!self.in_command());
        if !self.skip_to_line_end() {
            return None;
        }
        match self.input.iter().position(|&b| b == b'\n') {
            Some(end) if end < self.limits.max_command => {
                let mut line: Vec<u8> = self.input.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                Some(Ok(line))
            }
            Some(end) => {
                self.input.drain(..=end);
                Some(Err(()))
            }
            None if self.input.len() >= self.limits.max_command => {
                self.input.clear();
                self.skipping = true;
                Some(Err(()))
            }
            None => None,
        }
    }

    /// Inside a line that was too long, drops input up to its end; whether the end was found
    /// (or there was nothing to skip). Without an end, what came is dropped too: keeping it
    /// until the line ends would let a never-ending line take any amount of memory.
    fn skip_to_line_end(&mut self) -> bool {
        if !self.skipping {
            return true;
        }
        match self.input.iter().position(|&b| b == b'\n') {
            Some(end) => {
                self.input.drain(..=end);
                self.skipping = false;
                true
            }
            None => {
                self.input.clear();
                false
            }
        }
    }

    pub fn buffered(&self) -> usize {
        self.input.len() + self.command.len()
    }

    /// Whether the client is in the middle of a command (or of a raw line), except while it
    /// sends APPEND's message literal. A driver bounds the time a command may take, so that a
    /// client sending a byte at a time cannot hold a session open; a message upload, bounded by
    /// its size, is only bounded between reads.
    pub fn mid_command(&self) -> bool {
        if self.uploading() {
            return false;
        }
        !self.input.is_empty() || !self.command.is_empty() || self.skipping || self.literal_left > 0
    }

    /// Whether APPEND's message literal is being read: an upload, which the server bounds by
    /// its size (a minimum average rate) rather than as a command.
    pub fn uploading(&self) -> bool {
        self.literal_left > 0 && self.literal_exempt
    }

    /// Whether the literal being read is APPEND's message, exempt from the command limit.
    fn append_literal(&self) -> bool {
        self.logged_in && is_append(&self.command)
    }
}

/// `{123}`, `{123+}` or `{123-}` (RFC 7888) at the end of the last line: the size and whether
/// the client waits for a continuation request.
fn announced_literal(command: &[u8]) -> Option<(u64, bool)> {
    let line = command.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let spec = &inner[open + 1..];
    let (digits, synchronizing) = match spec.last()? {
        b'+' | b'-' => (&spec[..spec.len() - 1], false),
        _ => (spec, true),
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let size = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((size, synchronizing))
}

fn is_append(command: &[u8]) -> bool {
    let mut words = command.splitn(3, |&b| b == b' ');
    words.next();
    words.next().is_some_and(|w| w.eq_ignore_ascii_case(b"APPEND"))
}

/// The tag of a (possibly broken) command, if it has a plausible one.
pub fn tag_of(command: &[u8]) -> Option<String> {
    let end = command.iter().position(|&b| b == b' ' || b == b'\r' || b == b'\n')?;
    let tag = &command[..end];
    let valid =
        !tag.is_empty() && tag.len() <= 64 && tag.iter().all(|&b| b.is_ascii_graphic() && !b"(){%*\"\\+]".contains(&b));
    valid.then(|| String::from_utf8_lossy(tag).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framer() -> Framer {
        Framer::new(Limits { max_command: 100, max_append: 1000 })
    }

    #[test]
    fn plain_commands_and_partial_lines() {
        let mut f = framer();
        f.push(b"a NOOP\r\nb LOG");
        assert_eq!(f.next_frame(), Some(Frame::Command(b"a NOOP\r\n".to_vec())));
        assert_eq!(f.next_frame(), None);
        f.push(b"OUT\r\n");
        assert_eq!(f.next_frame(), Some(Frame::Command(b"b LOGOUT\r\n".to_vec())));
    }

    #[test]
    fn synchronizing_and_non_synchronizing_literals() {
        let mut f = framer();
        f.push(b"a LOGIN {5}\r\n");
        assert_eq!(f.next_frame(), Some(Frame::Continue));
        assert_eq!(f.next_frame(), None);
        f.push(b"alice {3+}\r\npw!\r\n");
        assert_eq!(f.next_frame(), Some(Frame::Command(b"a LOGIN {5}\r\nalice {3+}\r\npw!\r\n".to_vec())));
    }

    #[test]
    fn append_may_be_large_other_literals_may_not() {
        let mut f = framer();
        f.logged_in();
        f.push(b"a APPEND INBOX {900}\r\n");
        assert_eq!(f.next_frame(), Some(Frame::Continue));
        f.push(&[b'x'; 900]);
        f.push(b"\r\n");
        assert!(matches!(f.next_frame(), Some(Frame::Command(c)) if c.len() > 900));
        f.push(b"b APPEND INBOX {1001}\r\n");
        assert_eq!(
            f.next_frame(),
            Some(Frame::Refused { tag: Some("b".into()), reason: Refusal::LiteralTooBig, close: false })
        );
        f.push(b"c LOGIN {200}\r\n");
        assert_eq!(
            f.next_frame(),
            Some(Frame::Refused { tag: Some("c".into()), reason: Refusal::LiteralTooBig, close: false })
        );
        f.push(b"d APPEND INBOX {5000+}\r\n");
        assert_eq!(
            f.next_frame(),
            Some(Frame::Refused { tag: Some("d".into()), reason: Refusal::LiteralTooBig, close: true })
        );
    }

    /// Found by fuzzing (fuzz/fuzz_targets/imap_command.rs): every literal of an APPEND was
    /// exempt from the command limit, so one command could make the server hold any number of
    /// message-sized literals.
    #[test]
    fn only_one_literal_of_an_append_is_exempt() {
        let mut f = framer();
        f.logged_in();
        f.push(b"a APPEND INBOX {900+}\r\n");
        f.push(&[b'x'; 900]);
        f.push(b" {900+}\r\n");
        assert_eq!(
            f.next_frame(),
            Some(Frame::Refused { tag: Some("a".into()), reason: Refusal::LiteralTooBig, close: true })
        );
        // A small literal (a mailbox name) is counted, and the message literal is still exempt.
        let mut f = framer();
        f.logged_in();
        f.push(b"b APPEND {5+}\r\nINBOX {900+}\r\n");
        f.push(&[b'x'; 900]);
        f.push(b"\r\n");
        assert!(matches!(f.next_frame(), Some(Frame::Command(c)) if c.len() > 900));
        // Small literals after the message count against the command limit.
        let mut f = framer();
        f.logged_in();
        f.push(b"c APPEND INBOX {900+}\r\n");
        f.push(&[b'x'; 900]);
        for _ in 0..8 {
            f.push(b" {9+}\r\nyyyyyyyyy");
        }
        f.push(b"\r\n");
        assert!(matches!(f.next_frame(), Some(Frame::Refused { tag: Some(t), .. }) if t == "c"));
    }

    /// Found by the CI's fuzz run (fuzz/fuzz_targets/imap_session.rs): the rest of a line
    /// that was too long was kept until its end came, so a never-ending line took memory
    /// without bound.
    #[test]
    fn the_rest_of_an_overlong_line_is_dropped_as_it_comes() {
        for raw in [false, true] {
            let mut f = framer();
            let first = if raw { f.next_line().is_none() } else { f.next_frame().is_none() };
            assert!(first);
            f.push(&[b'x'; 150]);
            let refused = if raw { f.next_line() == Some(Err(())) } else { f.next_frame().is_some() };
            assert!(refused);
            for _ in 0..100 {
                f.push(&[b'y'; 50]);
                assert!(if raw { f.next_line().is_none() } else { f.next_frame().is_none() });
                assert_eq!(f.buffered(), 0, "raw line: {raw}");
            }
            f.push(b"yy\r\na NOOP\r\n");
            if raw {
                assert_eq!(f.next_line(), Some(Ok(b"a NOOP".to_vec())));
            } else {
                assert_eq!(f.next_frame(), Some(Frame::Command(b"a NOOP\r\n".to_vec())));
            }
        }
    }

    /// The server bounds a message upload by its rate and a command by its time: the framer
    /// tells which one a partial read belongs to.
    #[test]
    fn an_append_message_literal_is_an_upload_not_a_command() {
        let mut f = framer();
        f.logged_in();
        f.push(b"a APPEND INBOX {900}\r\n");
        assert_eq!(f.next_frame(), Some(Frame::Continue));
        f.push(&[b'x'; 10]);
        assert_eq!(f.next_frame(), None);
        assert!(f.uploading() && !f.mid_command());
        f.push(&[b'x'; 890]);
        assert_eq!(f.next_frame(), None);
        assert!(!f.uploading() && f.mid_command());
        // A small literal is part of its command.
        let mut f = framer();
        f.logged_in();
        f.push(b"b APPEND INBOX {20}\r\nxx");
        assert_eq!(f.next_frame(), Some(Frame::Continue));
        assert!(!f.uploading() && f.mid_command());
    }

    #[test]
    fn before_login_an_append_literal_is_bounded_like_any_other() {
        let mut f = framer();
        f.push(b"a APPEND INBOX {900}\r\n");
        assert_eq!(
            f.next_frame(),
            Some(Frame::Refused { tag: Some("a".into()), reason: Refusal::LiteralTooBig, close: false })
        );
        // Small enough to be a command: framed, for the session to refuse.
        f.push(b"b APPEND INBOX {50}\r\n");
        assert_eq!(f.next_frame(), Some(Frame::Continue));
        f.push(&[b'x'; 50]);
        f.push(b"\r\n");
        assert!(matches!(f.next_frame(), Some(Frame::Command(c)) if c.len() > 50));
        f.logged_in();
        f.push(b"c APPEND INBOX {900}\r\n");
        assert_eq!(f.next_frame(), Some(Frame::Continue));
    }

    #[test]
    fn mid_command_except_in_an_append_message() {
        let mut f = framer();
        assert!(!f.mid_command());
        f.push(b"a NO");
        assert_eq!(f.next_frame(), None);
        assert!(f.mid_command());
        f.push(b"OP\r\n");
        assert!(matches!(f.next_frame(), Some(Frame::Command(_))));
        assert!(!f.mid_command());
        f.push(b"b LOGIN {5}\r\n");
        assert_eq!(f.next_frame(), Some(Frame::Continue));
        assert!(f.mid_command(), "a login literal is part of the command");
        f.push(b"alice x\r\n");
        assert!(matches!(f.next_frame(), Some(Frame::Command(_))));
        f.logged_in();
        f.push(b"c APPEND INBOX {500}\r\n");
        assert_eq!(f.next_frame(), Some(Frame::Continue));
        f.push(&[b'x'; 100]);
        assert_eq!(f.next_frame(), None);
        assert!(!f.mid_command(), "a message upload is bounded between reads only");
        f.push(&[b'x'; 400]);
        assert_eq!(f.next_frame(), None);
        assert!(f.mid_command(), "the line after the message is part of the command again");
    }

    #[test]
    fn overlong_lines_are_refused_and_skipped() {
        let mut f = framer();
        f.push(&[b'a'; 150]);
        assert_eq!(f.next_frame(), Some(Frame::Refused { tag: None, reason: Refusal::CommandTooLong, close: false }));
        f.push(b"aaaa\r\nx NOOP\r\n");
        assert_eq!(f.next_frame(), Some(Frame::Command(b"x NOOP\r\n".to_vec())));
        let mut f = framer();
        f.push(format!("t1 SEARCH {}\r\nt2 NOOP\r\n", "1,".repeat(60)).as_bytes());
        assert_eq!(
            f.next_frame(),
            Some(Frame::Refused { tag: Some("t1".into()), reason: Refusal::CommandTooLong, close: false })
        );
        assert_eq!(f.next_frame(), Some(Frame::Command(b"t2 NOOP\r\n".to_vec())));
    }

    #[test]
    fn literal_markers_are_recognised_only_at_line_end() {
        assert_eq!(announced_literal(b"a LOGIN {5}\r\n"), Some((5, true)));
        assert_eq!(announced_literal(b"a LOGIN {5+}\n"), Some((5, false)));
        assert_eq!(announced_literal(b"a LOGIN {5-}\r\n"), Some((5, false)));
        assert_eq!(announced_literal(b"a LOGIN {}\r\n"), None);
        assert_eq!(announced_literal(b"a LOGIN {x}\r\n"), None);
        assert_eq!(announced_literal(b"a LOGIN {99999999999999999999}\r\n"), None);
        assert_eq!(announced_literal(b"a {5} NOOP\r\n"), None);
    }

    #[test]
    fn raw_lines_for_idle_and_sasl() {
        let mut f = framer();
        f.push(b"DONE\r\nx");
        assert_eq!(f.next_line(), Some(Ok(b"DONE".to_vec())));
        assert_eq!(f.next_line(), None);
        f.push(&[b'y'; 200]);
        assert_eq!(f.next_line(), Some(Err(())));
    }
}
