//! The client side of IMAP over implicit TLS (port 993), written for load generation: tagged
//! commands, untagged responses handed to the caller one at a time (literals included, so that
//! a response is always whole), LITERAL+ APPEND that can be pipelined, and IDLE.
//!
//! A response is read as a line; when the line ends in a literal announcement (`{n}` or
//! `{n+}`, also `~{n}` for BINARY), the n bytes that follow belong to it and so does the line
//! after them, until a line ends without one (RFC 9051 §4.3).

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::tls::{connect, Failure, Target};

/// One IMAPS connection.
pub struct Imap {
    io: BufReader<TlsStream<TcpStream>>,
    timeout: Duration,
    next_tag: u64,
    /// The response being read (reused).
    response: Vec<u8>,
    /// Untagged responses that arrived while something else was awaited (e.g. during a
    /// pipelined APPEND): kept for [`Imap::next_untagged`].
    early: std::collections::VecDeque<Vec<u8>>,
}

/// The tagged completion of a command.
#[derive(Debug, Clone)]
pub struct Completion {
    pub tag: String,
    /// "OK", "NO" or "BAD".
    pub status: String,
    /// The line after the status.
    pub text: String,
}

impl Completion {
    pub fn is_ok(&self) -> bool {
        self.status == "OK"
    }
}

impl Imap {
    /// TCP connect, TLS handshake, and the server's `* OK` greeting.
    pub async fn connect(target: &Target, timeout: Duration) -> Result<Imap, Failure> {
        let stream = connect(target.addr, target.connector.clone(), target.name.clone(), timeout).await?;
        let mut imap = Imap {
            io: BufReader::with_capacity(64 * 1024, stream),
            timeout,
            next_tag: 1,
            response: Vec::with_capacity(4096),
            early: Default::default(),
        };
        let greeting = match tokio::time::timeout(timeout, imap.read_response()).await {
            Ok(result) => result?,
            Err(_) => return Err(Failure::Broken(format!("greeting: none within {timeout:?}"))),
        };
        if !greeting.starts_with(b"* OK") && !greeting.starts_with(b"* PREAUTH") {
            return Err(Failure::Broken(format!("greeting: {}", show(&greeting))));
        }
        Ok(imap)
    }

    /// LOGIN with both strings quoted.
    pub async fn login(&mut self, user: &str, password: &str) -> Result<(), Failure> {
        let line = format!("LOGIN {} {}", quoted(user), quoted(password));
        self.expect_ok(&line, "LOGIN", |_| {}).await
    }

    /// LOGOUT: waits for the tagged OK, then closes the TLS stream.
    pub async fn logout(mut self) -> Result<(), Failure> {
        let result = self.expect_ok("LOGOUT", "LOGOUT", |_| {}).await;
        let _ = self.io.get_mut().shutdown().await;
        result
    }

    /// Sends `command` (without tag and CRLF) and reads up to its completion; every untagged
    /// response (literals included, CRLF stripped) goes to `untagged`. A NO or BAD is a
    /// [`Failure::Rejected`].
    pub async fn expect_ok(
        &mut self,
        command: &str,
        what: &str,
        untagged: impl FnMut(&[u8]) + Send,
    ) -> Result<(), Failure> {
        let done = self.command(command, untagged).await?;
        if done.is_ok() {
            Ok(())
        } else {
            Err(Failure::Rejected(format!("{what}: {} {}", done.status, done.text)))
        }
    }

    /// Sends `command` and reads up to its tagged completion, whatever it is.
    pub async fn command(
        &mut self,
        command: &str,
        mut untagged: impl FnMut(&[u8]) + Send,
    ) -> Result<Completion, Failure> {
        let tag = self.tag();
        let line = format!("{tag} {command}\r\n");
        let timeout = self.timeout;
        let run = async {
            self.send(line.as_bytes()).await?;
            self.until_tagged(&tag, &mut untagged).await
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Broken(format!("{}: no completion within {timeout:?}", verb(command)))),
        }
    }

    /// Sends an APPEND with a non-synchronizing literal (LITERAL+, RFC 7888) and returns its
    /// tag without waiting: several can be in flight; [`Imap::completion`] reads them back.
    /// `flags` is e.g. `(\Seen)` or empty; `date` an IMAP date-time without quotes, or empty.
    pub async fn send_append(
        &mut self,
        mailbox: &str,
        flags: &str,
        date: &str,
        message: &[u8],
    ) -> Result<String, Failure> {
        let tag = self.tag();
        let mut head = format!("{tag} APPEND {}", quoted(mailbox));
        if !flags.is_empty() {
            head.push(' ');
            head.push_str(flags);
        }
        if !date.is_empty() {
            head.push_str(&format!(" \"{date}\""));
        }
        head.push_str(&format!(" {{{}+}}\r\n", message.len()));
        let mut bytes = Vec::with_capacity(head.len() + message.len() + 2);
        bytes.extend_from_slice(head.as_bytes());
        bytes.extend_from_slice(message);
        bytes.extend_from_slice(b"\r\n");
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.send(&bytes)).await {
            Ok(result) => result.map(|()| tag),
            Err(_) => Err(Failure::Broken("APPEND: write timed out".into())),
        }
    }

    /// Reads up to the completion tagged `tag` (sent earlier, e.g. by [`Imap::send_append`]);
    /// untagged responses meanwhile are kept for [`Imap::next_untagged`].
    pub async fn completion(&mut self, tag: &str) -> Result<Completion, Failure> {
        let timeout = self.timeout;
        let run = async {
            let mut kept = Vec::new();
            let done = self.until_tagged(tag, &mut |r: &[u8]| kept.push(r.to_vec())).await;
            self.early.extend(kept);
            done
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Broken(format!("no completion for {tag} within {timeout:?}"))),
        }
    }

    /// APPEND and wait for its completion.
    pub async fn append(&mut self, mailbox: &str, flags: &str, date: &str, message: &[u8]) -> Result<(), Failure> {
        let tag = self.send_append(mailbox, flags, date, message).await?;
        let done = self.completion(&tag).await?;
        if done.is_ok() {
            Ok(())
        } else {
            Err(Failure::Rejected(format!("APPEND: {} {}", done.status, done.text)))
        }
    }

    /// IDLE: sends it and waits for the continuation request. Returns the tag for
    /// [`Imap::done`]; untagged responses before the `+` are kept for [`Imap::next_untagged`].
    pub async fn idle(&mut self) -> Result<String, Failure> {
        let tag = self.tag();
        let line = format!("{tag} IDLE\r\n");
        let timeout = self.timeout;
        let run = async {
            self.send(line.as_bytes()).await?;
            loop {
                let response = self.read_response().await?;
                if response.starts_with(b"+") {
                    return Ok(());
                }
                if response.starts_with(b"* ") {
                    self.early.push_back(response);
                    continue;
                }
                return Err(Failure::Rejected(format!("IDLE: {}", show(&response))));
            }
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(result) => result.map(|()| tag),
            Err(_) => Err(Failure::Broken(format!("IDLE: no continuation within {timeout:?}"))),
        }
    }

    /// Ends IDLE (DONE) and waits for its completion.
    pub async fn done(&mut self, tag: &str) -> Result<(), Failure> {
        self.send(b"DONE\r\n").await?;
        let done = self.completion(tag).await?;
        if done.is_ok() {
            Ok(())
        } else {
            Err(Failure::Rejected(format!("IDLE: {} {}", done.status, done.text)))
        }
    }

    /// The next untagged response (one kept earlier first), waiting at most `wait`.
    /// `Ok(None)` when none came in time.
    pub async fn next_untagged(&mut self, wait: Duration) -> Result<Option<Vec<u8>>, Failure> {
        if let Some(r) = self.early.pop_front() {
            return Ok(Some(r));
        }
        match tokio::time::timeout(wait, self.read_response()).await {
            Err(_) => Ok(None),
            Ok(Ok(r)) if r.starts_with(b"* ") => Ok(Some(r)),
            Ok(Ok(r)) => Err(Failure::Broken(format!("expected an untagged response: {}", show(&r)))),
            Ok(Err(e)) => Err(e),
        }
    }

    fn tag(&mut self) -> String {
        let tag = format!("b{}", self.next_tag);
        self.next_tag += 1;
        tag
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        let io = self.io.get_mut();
        io.write_all(bytes).await.map_err(|e| Failure::Broken(format!("write: {e}")))?;
        io.flush().await.map_err(|e| Failure::Broken(format!("write: {e}")))
    }

    /// Reads responses up to the one tagged `tag`; untagged ones go to `untagged`.
    async fn until_tagged(
        &mut self,
        tag: &str,
        untagged: &mut (impl FnMut(&[u8]) + Send),
    ) -> Result<Completion, Failure> {
        loop {
            self.fill_response().await?;
            let r = &self.response[..];
            if r.starts_with(b"* ") {
                untagged(r);
                continue;
            }
            if r.starts_with(b"+") {
                return Err(Failure::Broken(format!("unexpected continuation request: {}", show(r))));
            }
            let text = String::from_utf8_lossy(r);
            let mut words = text.splitn(3, ' ');
            let got = words.next().unwrap_or("");
            let status = words.next().unwrap_or("").to_ascii_uppercase();
            let rest = words.next().unwrap_or("").to_string();
            if got != tag {
                // A completion of a command sent before (pipelining out of order): not expected
                // from these clients.
                return Err(Failure::Broken(format!("completion for {got} while waiting for {tag}: {text}")));
            }
            if !matches!(status.as_str(), "OK" | "NO" | "BAD") {
                return Err(Failure::Broken(format!("not a completion: {text}")));
            }
            return Ok(Completion { tag: got.to_string(), status, text: rest });
        }
    }

    /// One whole response into a fresh vector.
    async fn read_response(&mut self) -> Result<Vec<u8>, Failure> {
        self.fill_response().await?;
        Ok(self.response.clone())
    }

    /// One whole response into `self.response`, its literals included, the final CRLF removed.
    async fn fill_response(&mut self) -> Result<(), Failure> {
        self.response.clear();
        loop {
            let start = self.response.len();
            match self.io.read_until(b'\n', &mut self.response).await {
                Ok(0) => {
                    return Err(Failure::Broken(format!(
                        "connection closed{}",
                        if self.response.is_empty() { String::new() } else { format!(" ({})", show(&self.response)) }
                    )))
                }
                Ok(_) => {}
                Err(e) => return Err(Failure::Broken(format!("read: {e}"))),
            }
            if !self.response.ends_with(b"\n") {
                return Err(Failure::Broken("connection closed inside a line".into()));
            }
            self.response.pop();
            if self.response.ends_with(b"\r") {
                self.response.pop();
            }
            let Some(size) = literal_at_end(&self.response[start..]) else {
                return Ok(());
            };
            // Keep the line break before the literal, as sent.
            self.response.extend_from_slice(b"\r\n");
            let at = self.response.len();
            self.response.resize(at + size, 0);
            self.io.read_exact(&mut self.response[at..]).await.map_err(|e| Failure::Broken(format!("literal: {e}")))?;
        }
    }
}

/// The size of a literal announced at the end of a line (`{12}`, `{12+}`, `~{12}`).
pub fn literal_at_end(line: &[u8]) -> Option<usize> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let digits = &inner[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// An IMAP quoted string (the names and passwords used here need no literal).
pub fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `* 12 EXISTS` -> 12 (also for FETCH, EXPUNGE, RECENT with `word`).
pub fn numbered(response: &[u8], word: &str) -> Option<u32> {
    let rest = response.strip_prefix(b"* ")?;
    let space = rest.iter().position(|&b| b == b' ')?;
    let n = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
    let after = &rest[space + 1..];
    let w = word.as_bytes();
    if after.len() >= w.len()
        && after[..w.len()].eq_ignore_ascii_case(w)
        && (after.len() == w.len() || after[w.len()] == b' ')
    {
        Some(n)
    } else {
        None
    }
}

/// The numbers after `* SEARCH` (empty for a search that found nothing).
pub fn search_result(response: &[u8]) -> Option<Vec<u32>> {
    let text = std::str::from_utf8(response).ok()?;
    let rest = text.strip_prefix("* SEARCH").or_else(|| text.strip_prefix("* search"))?;
    rest.split_whitespace().map(|n| n.parse().ok()).collect()
}

/// The value of `UID n` inside a FETCH response.
pub fn fetch_uid(response: &[u8]) -> Option<u32> {
    let at = find(response, b"UID ")?;
    // Not the tail of another word (e.g. "X-UID").
    if at > 0 && !matches!(response[at - 1], b'(' | b' ') {
        return None;
    }
    let digits: Vec<u8> = response[at + 4..].iter().take_while(|b| b.is_ascii_digit()).copied().collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A response shortened for an error message.
pub fn show(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if text.chars().count() > 200 {
        format!("{}...", text.chars().take(200).collect::<String>())
    } else {
        text.into_owned()
    }
}

fn verb(command: &str) -> &str {
    let mut words = command.split(' ');
    match words.next() {
        Some(w) if w.eq_ignore_ascii_case("UID") => {
            let next = words.next().unwrap_or("");
            &command[..(3 + 1 + next.len()).min(command.len())]
        }
        Some(w) => w,
        None => command,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_found_at_the_end_of_a_line() {
        assert_eq!(literal_at_end(b"* 1 FETCH (BODY[] {12}"), Some(12));
        assert_eq!(literal_at_end(b"a APPEND INBOX {5+}"), Some(5));
        assert_eq!(literal_at_end(b"* 1 FETCH (BINARY[1] ~{0}"), Some(0));
        assert_eq!(literal_at_end(b"* OK [UIDNEXT 5] {x}"), None);
        assert_eq!(literal_at_end(b"* 1 FETCH (FLAGS ())"), None);
        assert_eq!(literal_at_end(b"{}"), None);
    }

    #[test]
    fn responses_are_taken_apart() {
        assert_eq!(numbered(b"* 100000 EXISTS", "EXISTS"), Some(100000));
        assert_eq!(numbered(b"* 3 FETCH (FLAGS (\\Seen))", "FETCH"), Some(3));
        assert_eq!(numbered(b"* 3 FETCHED", "FETCH"), None);
        assert_eq!(numbered(b"* OK [UIDNEXT 5]", "EXISTS"), None);
        assert_eq!(search_result(b"* SEARCH 4 17"), Some(vec![4, 17]));
        assert_eq!(search_result(b"* SEARCH"), Some(vec![]));
        assert_eq!(fetch_uid(b"* 3 FETCH (FLAGS () UID 77)"), Some(77));
        assert_eq!(fetch_uid(b"* 3 FETCH (UID 5 FLAGS ())"), Some(5));
        assert_eq!(quoted("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(verb("UID FETCH 1:2 (FLAGS)"), "UID FETCH");
        assert_eq!(verb("SELECT INBOX"), "SELECT");
    }
}
