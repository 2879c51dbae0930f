//! The thin I/O layer: connecting with a verdict (open, closed, filtered) and a line reader
//! bounded in every way a hostile or stuck server could stretch it: the length of a line, the
//! lines in one answer, the bytes of a whole connection, the wait for an answer and the time of
//! a whole connection. So a server can neither hang the audit nor fill its memory: an endless
//! `250-` reply, a 10 MB line and a one-byte-a-second trickle all end in an error.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::proto::smtp_line;
use crate::report::PortState;

/// No mail protocol line comes near this.
const MAX_LINE: usize = 16 * 1024;
/// No answer of a mail server has this many lines: an EHLO reply has about 20, a POP3 CAPA or
/// an IMAP CAPABILITY fewer.
pub const MAX_ANSWER_LINES: usize = 1000;
/// What one connection may send in all; the dialogues here read a few kilobytes.
pub const MAX_CONNECTION_BYTES: usize = 1024 * 1024;
/// How many answers' worth of time (`--timeout` each) one connection may take in all: the
/// longest dialogue here (POP3 before TLS) waits for six.
pub const CONNECTION_ANSWERS: u32 = 8;

/// Connects, telling a refusal (closed) from silence or unreachability (filtered).
pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, PortState> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(tcp)) => {
            let _ = tcp.set_nodelay(true);
            Ok(tcp)
        }
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => Err(PortState::Closed),
        _ => Err(PortState::Filtered),
    }
}

pub fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "no answer in time")
}

fn too_much(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// A line-oriented conversation over plain TCP or TLS.
pub struct Conn<S> {
    pub io: S,
    buf: Vec<u8>,
    /// How long to wait for each answer.
    pub timeout: Duration,
    /// When the whole conversation must be over.
    deadline: Instant,
    /// Lines read since the last command was sent.
    answer_lines: usize,
    /// Bytes read from the connection so far.
    received: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    pub fn new(io: S, timeout: Duration) -> Conn<S> {
        let deadline = Instant::now() + timeout * CONNECTION_ANSWERS;
        Conn { io, buf: Vec::new(), timeout, deadline, answer_lines: 0, received: 0 }
    }

    /// One line without its CRLF; an error at EOF or after the timeout.
    pub async fn line(&mut self) -> io::Result<String> {
        let wait = self.timeout;
        self.line_within(wait).await?.ok_or_else(timed_out)
    }

    /// One line, or None if nothing complete came within `wait`; an error when the line, the
    /// answer or the connection goes past its bound.
    pub async fn line_within(&mut self, wait: Duration) -> io::Result<Option<String>> {
        let answer_deadline = Instant::now() + wait;
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                self.answer_lines += 1;
                if self.answer_lines > MAX_ANSWER_LINES {
                    return Err(too_much(format!("the server sent more than {MAX_ANSWER_LINES} lines in one answer")));
                }
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                return Ok(Some(String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_string()));
            }
            if self.buf.len() > MAX_LINE {
                return Err(too_much(format!("the server sent a line longer than {} KiB", MAX_LINE / 1024)));
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout_at(answer_deadline.min(self.deadline), self.io.read(&mut chunk)).await {
                Err(_) if answer_deadline <= self.deadline => return Ok(None),
                Err(_) => return Err(self.overtime()),
                Ok(Ok(0)) => {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection"))
                }
                Ok(Ok(n)) => {
                    self.received += n;
                    if self.received > MAX_CONNECTION_BYTES {
                        return Err(too_much(format!(
                            "the server sent more than {} KiB on one connection",
                            MAX_CONNECTION_BYTES / 1024
                        )));
                    }
                    self.buf.extend_from_slice(&chunk[..n]);
                }
                Ok(Err(e)) => return Err(e),
            }
        }
    }

    fn overtime(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the server took longer than {:?} in all on one connection", self.timeout * CONNECTION_ANSWERS),
        )
    }

    pub async fn send(&mut self, line: &str) -> io::Result<()> {
        self.send_raw(format!("{line}\r\n").as_bytes()).await
    }

    /// Sends a command: what is read next is a new answer.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.answer_lines = 0;
        let answer_deadline = Instant::now() + self.timeout;
        let write = async {
            self.io.write_all(bytes).await?;
            self.io.flush().await
        };
        match tokio::time::timeout_at(answer_deadline.min(self.deadline), write).await {
            Ok(done) => done,
            Err(_) if answer_deadline <= self.deadline => Err(timed_out()),
            Err(_) => Err(self.overtime()),
        }
    }

    /// A whole SMTP reply: its code and its lines.
    pub async fn smtp_reply(&mut self) -> io::Result<(u16, Vec<String>)> {
        let mut lines = Vec::new();
        loop {
            let line = self.line().await?;
            let (code, last) = smtp_line(&line)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("not an SMTP reply: {line:?}")))?;
            lines.push(line);
            if last {
                return Ok((code, lines));
            }
        }
    }

    pub async fn smtp(&mut self, command: &str) -> io::Result<(u16, Vec<String>)> {
        self.send(command).await?;
        self.smtp_reply().await
    }

    /// Lines up to and including the one tagged `tag`, for IMAP.
    pub async fn imap(&mut self, tag: &str, command: &str) -> io::Result<Vec<String>> {
        self.send(&format!("{tag} {command}")).await?;
        self.imap_until_tagged(&[tag]).await
    }

    /// Lines until one starts with any of `tags`; that line is last.
    pub async fn imap_until_tagged(&mut self, tags: &[&str]) -> io::Result<Vec<String>> {
        let mut lines = Vec::new();
        loop {
            let line = self.line().await?;
            let done = tags.iter().any(|t| line.starts_with(&format!("{t} ")));
            lines.push(line);
            if done {
                return Ok(lines);
            }
        }
    }

    /// True if the server sent more than was read (e.g. answers to pipelined commands).
    pub fn has_buffered(&self) -> bool {
        !self.buf.is_empty()
    }

    pub fn into_inner(self) -> S {
        self.io
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{duplex, DuplexStream};

    /// Runs `test` against a fake server that writes what `serve` writes.
    fn against<F, T>(
        serve: impl FnOnce(DuplexStream) -> F + Send + 'static,
        test: impl AsyncFnOnce(Conn<DuplexStream>) -> T,
    ) -> T
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let (client, server) = duplex(64 * 1024);
            let server = tokio::spawn(serve(server));
            let out = test(Conn::new(client, Duration::from_millis(200))).await;
            server.abort();
            out
        })
    }

    #[test]
    fn an_endless_answer_ends_at_the_line_limit() {
        let err = against(
            |mut s| async move { while s.write_all(b"250-more\r\n").await.is_ok() {} },
            async |mut conn| conn.smtp_reply().await.unwrap_err(),
        );
        assert!(err.to_string().contains("1000 lines in one answer"), "{err}");
    }

    #[test]
    fn each_answer_has_its_own_line_limit() {
        let lines = against(
            |mut s| async move {
                let answer = format!("{}250 done\r\n", "250-more\r\n".repeat(MAX_ANSWER_LINES - 1));
                let mut command = [0u8; 64];
                for _ in 0..2 {
                    s.write_all(answer.as_bytes()).await.unwrap();
                    let _ = s.read(&mut command).await;
                }
            },
            async |mut conn| {
                let (_, first) = conn.smtp_reply().await.unwrap();
                let (_, second) = conn.smtp("NOOP").await.unwrap();
                first.len() + second.len()
            },
        );
        assert_eq!(lines, 2 * MAX_ANSWER_LINES);
    }

    #[test]
    fn a_long_line_is_refused_without_being_kept() {
        let err = against(
            |mut s| async move {
                let _ = s.write_all(&vec![b'A'; 10 * 1024 * 1024]).await;
            },
            async |mut conn| conn.line().await.unwrap_err(),
        );
        assert!(err.to_string().contains("longer than 16 KiB"), "{err}");
    }

    #[test]
    fn a_connection_ends_at_its_byte_limit() {
        let err = against(
            |mut s| async move {
                let line = format!("250-{}\r\n", "A".repeat(15 * 1024));
                while s.write_all(line.as_bytes()).await.is_ok() {}
            },
            async |mut conn| conn.smtp_reply().await.unwrap_err(),
        );
        assert!(err.to_string().contains("more than 1024 KiB on one connection"), "{err}");
    }

    #[test]
    fn a_trickle_ends_at_the_connection_deadline() {
        let started = std::time::Instant::now();
        let err = against(
            |mut s| async move {
                // Each line well within the 200 ms an answer may take, and never the last one.
                while s.write_all(b"250-slow\r\n").await.is_ok() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            async |mut conn| conn.smtp_reply().await.unwrap_err(),
        );
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(err.to_string().contains("in all on one connection"), "{err}");
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(200) * CONNECTION_ANSWERS && elapsed < Duration::from_secs(5),
            "{elapsed:?}"
        );
    }

    #[test]
    fn silence_within_the_wait_is_no_line_not_an_error() {
        let line = against(
            |s| async move {
                let _open = s;
                std::future::pending::<()>().await
            },
            async |mut conn| conn.line_within(Duration::from_millis(50)).await.unwrap(),
        );
        assert_eq!(line, None);
    }
}
