//! The client side of SMTP submission over implicit TLS, just enough to generate load:
//! lock-step commands (no pipelining, as most submission clients do), one reply read per command.

use std::time::Duration;

use base64::Engine as _;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::tls::{connect, Failure};

/// One SMTPS connection.
pub struct Smtp {
    io: BufReader<TlsStream<TcpStream>>,
    timeout: Duration,
    line: Vec<u8>,
}

impl Smtp {
    /// TCP connect, TLS handshake, and the server's 220 greeting.
    pub async fn connect(
        addr: std::net::SocketAddr,
        tls: TlsConnector,
        name: ServerName<'static>,
        timeout: Duration,
    ) -> Result<Smtp, Failure> {
        let stream = connect(addr, tls, name, timeout).await?;
        let mut smtp = Smtp { io: BufReader::new(stream), timeout, line: Vec::new() };
        smtp.expect(220, "greeting").await?;
        Ok(smtp)
    }

    /// EHLO, then AUTH PLAIN with an initial response (RFC 4954, RFC 4616).
    pub async fn login(&mut self, user: &str, password: &str) -> Result<(), Failure> {
        self.command("EHLO bench.client", 250).await?;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        self.send(format!("AUTH PLAIN {token}\r\n").as_bytes()).await?;
        self.expect(235, "AUTH PLAIN").await
    }

    /// One transaction; `data` is the message, dot-stuffed, ending in CRLF, without the final dot.
    pub async fn submit(&mut self, from: &str, to: &str, data: &[u8]) -> Result<(), Failure> {
        self.command(&format!("MAIL FROM:<{from}>"), 250).await?;
        self.command(&format!("RCPT TO:<{to}>"), 250).await?;
        self.command("DATA", 354).await?;
        self.send(data).await?;
        self.send(b".\r\n").await?;
        self.expect(250, "end of DATA").await
    }

    /// After a rejected step: back to a clean state for the next transaction.
    pub async fn reset(&mut self) -> Result<(), Failure> {
        self.command("RSET", 250).await.map_err(|e| Failure::Broken(e.to_string()))
    }

    pub async fn quit(mut self) {
        let _ = self.command("QUIT", 221).await;
        let _ = self.io.get_mut().shutdown().await;
    }

    async fn command(&mut self, line: &str, code: u16) -> Result<(), Failure> {
        self.send(format!("{line}\r\n").as_bytes()).await?;
        let verb = line.split(' ').next().unwrap_or(line);
        self.expect(code, verb).await
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        let io = self.io.get_mut();
        let write = async {
            io.write_all(bytes).await?;
            io.flush().await
        };
        match tokio::time::timeout(self.timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Failure::Broken(format!("write: {e}"))),
            Err(_) => Err(Failure::Broken("write: timed out".into())),
        }
    }

    /// Reads a whole reply (all its continuation lines) and checks its code.
    async fn expect(&mut self, code: u16, after: &str) -> Result<(), Failure> {
        let mut text = String::new();
        loop {
            self.line.clear();
            let read = tokio::time::timeout(self.timeout, self.io.read_until(b'\n', &mut self.line)).await;
            match read {
                Err(_) => return Err(Failure::Broken(format!("{after}: no reply within {:?}", self.timeout))),
                Ok(Err(e)) => return Err(Failure::Broken(format!("{after}: read: {e}"))),
                Ok(Ok(0)) => return Err(Failure::Broken(format!("{after}: connection closed ({})", text.trim_end()))),
                Ok(Ok(_)) => {}
            }
            let line = String::from_utf8_lossy(&self.line);
            let line = line.trim_end_matches(['\r', '\n']);
            text.push_str(line);
            text.push('\n');
            // "250-..." continues, "250 ..." (or a bare "250") ends the reply.
            if line.len() < 3 || !line.as_bytes()[..3].iter().all(u8::is_ascii_digit) {
                return Err(Failure::Broken(format!("{after}: not an SMTP reply: {line:?}")));
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
        let got: u16 = text[..3].parse().unwrap_or(0);
        if got == code {
            Ok(())
        } else {
            Err(Failure::Rejected(format!("{after}: {}", text.trim_end().replace('\n', " | "))))
        }
    }
}
