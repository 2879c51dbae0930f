//! The thin I/O layer: connecting with a verdict (open, closed, filtered) and a line reader with
//! a timeout on every read and a cap on every line, so that a hostile or stuck server can
//! neither hang the audit nor fill its memory.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::proto::smtp_line;
use crate::report::PortState;

/// No mail protocol line comes near this.
const MAX_LINE: usize = 16 * 1024;

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

/// A line-oriented conversation over plain TCP or TLS.
pub struct Conn<S> {
    pub io: S,
    buf: Vec<u8>,
    pub timeout: Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    pub fn new(io: S, timeout: Duration) -> Conn<S> {
        Conn { io, buf: Vec::new(), timeout }
    }

    /// One line without its CRLF; an error at EOF or after the timeout.
    pub async fn line(&mut self) -> io::Result<String> {
        let wait = self.timeout;
        self.line_within(wait).await?.ok_or_else(timed_out)
    }

    /// One line, or None if nothing complete came within `wait`.
    pub async fn line_within(&mut self, wait: Duration) -> io::Result<Option<String>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                return Ok(Some(String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_string()));
            }
            if self.buf.len() > MAX_LINE {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout_at(deadline, self.io.read(&mut chunk)).await {
                Err(_) => return Ok(None),
                Ok(Ok(0)) => {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection"))
                }
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Ok(Err(e)) => return Err(e),
            }
        }
    }

    pub async fn send(&mut self, line: &str) -> io::Result<()> {
        self.send_raw(format!("{line}\r\n").as_bytes()).await
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        tokio::time::timeout(self.timeout, async {
            self.io.write_all(bytes).await?;
            self.io.flush().await
        })
        .await
        .map_err(|_| timed_out())?
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
