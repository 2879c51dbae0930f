//! Just enough of a POP3 client over implicit TLS (port 995) for the soak: AUTH PLAIN, STAT,
//! RETR (read to the final dot), DELE, QUIT.

use std::time::Duration;

use base64::Engine as _;
use portcullis_bench::tls::connect;
use portcullis_bench::{Failure, Target};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

pub struct Pop3 {
    io: BufReader<TlsStream<TcpStream>>,
    timeout: Duration,
    line: Vec<u8>,
}

impl Pop3 {
    /// TCP connect, TLS handshake, the +OK greeting, and AUTH PLAIN.
    pub async fn login(target: &Target, user: &str, password: &str, timeout: Duration) -> Result<Pop3, Failure> {
        let stream = connect(target.addr, target.connector.clone(), target.name.clone(), timeout).await?;
        let mut pop = Pop3 { io: BufReader::new(stream), timeout, line: Vec::new() };
        pop.status("greeting").await?;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        pop.command(&format!("AUTH PLAIN {token}"), "AUTH PLAIN").await?;
        Ok(pop)
    }

    /// STAT: the number of messages.
    pub async fn stat(&mut self) -> Result<usize, Failure> {
        let text = self.command("STAT", "STAT").await?;
        text.split(' ').next().and_then(|n| n.parse().ok()).ok_or_else(|| Failure::Broken(format!("STAT: {text}")))
    }

    /// RETR: the message's size in bytes as received (dot-stuffing and all).
    pub async fn retr(&mut self, n: usize) -> Result<usize, Failure> {
        self.command(&format!("RETR {n}"), "RETR").await?;
        let mut size = 0;
        loop {
            self.read_line("RETR").await?;
            if self.line == b".\r\n" || self.line == b".\n" {
                return Ok(size);
            }
            size += self.line.len();
        }
    }

    pub async fn dele(&mut self, n: usize) -> Result<(), Failure> {
        self.command(&format!("DELE {n}"), "DELE").await.map(|_| ())
    }

    /// QUIT: the deletions happen now (RFC 1939 §6).
    pub async fn quit(mut self) -> Result<(), Failure> {
        self.command("QUIT", "QUIT").await?;
        let _ = self.io.get_mut().shutdown().await;
        Ok(())
    }

    /// Sends a command, reads its status line; the text after "+OK ".
    async fn command(&mut self, line: &str, what: &str) -> Result<String, Failure> {
        let io = self.io.get_mut();
        let write = async {
            io.write_all(format!("{line}\r\n").as_bytes()).await?;
            io.flush().await
        };
        match tokio::time::timeout(self.timeout, write).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Failure::Broken(format!("{what}: write: {e}"))),
            Err(_) => return Err(Failure::Broken(format!("{what}: write timed out"))),
        }
        self.status(what).await
    }

    async fn status(&mut self, what: &str) -> Result<String, Failure> {
        self.read_line(what).await?;
        let text = String::from_utf8_lossy(&self.line).trim_end().to_string();
        match text.strip_prefix("+OK") {
            Some(rest) => Ok(rest.trim_start().to_string()),
            None => Err(Failure::Rejected(format!("{what}: {text}"))),
        }
    }

    async fn read_line(&mut self, what: &str) -> Result<(), Failure> {
        self.line.clear();
        match tokio::time::timeout(self.timeout, self.io.read_until(b'\n', &mut self.line)).await {
            Err(_) => Err(Failure::Broken(format!("{what}: no answer within {:?}", self.timeout))),
            Ok(Err(e)) => Err(Failure::Broken(format!("{what}: read: {e}"))),
            Ok(Ok(0)) => Err(Failure::Broken(format!("{what}: connection closed"))),
            Ok(Ok(_)) => Ok(()),
        }
    }
}
