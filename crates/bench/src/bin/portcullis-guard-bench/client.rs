//! One login attempt after another, over IMAP LOGIN or SMTP AUTH PLAIN, from a chosen source
//! address, with every way the server can say no told apart: dropped at accept (before TLS:
//! a ban, the firewall, or a connection limit past the server's polite refusals), refused as too
//! busy (a greeting of `* BYE` or `421`), a refused login, a session closed under it.

use std::io::ErrorKind;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use portcullis_bench::imap::quoted;
use portcullis_bench::tls::tcp_connect;
use portcullis_bench::Target;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Imap,
    Smtp,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Imap => "imap",
            Proto::Smtp => "smtp",
        }
    }
}

/// Where to log in, by protocol.
#[derive(Clone)]
pub struct Servers {
    pub imap: Option<Target>,
    pub smtp: Option<Target>,
    /// For each step: connect, handshake, greeting, each answer.
    pub timeout: Duration,
}

impl Servers {
    pub fn protocols(&self) -> Vec<Proto> {
        let mut p = Vec::new();
        if self.imap.is_some() {
            p.push(Proto::Imap);
        }
        if self.smtp.is_some() {
            p.push(Proto::Smtp);
        }
        p
    }

    fn target(&self, proto: Proto) -> &Target {
        match proto {
            Proto::Imap => self.imap.as_ref(),
            Proto::Smtp => self.smtp.as_ref(),
        }
        .expect("a protocol without a server is never chosen")
    }
}

/// How opening a session ended.
pub enum Opened {
    Ready(Box<Session>),
    /// The connection was dropped before the TLS handshake finished: a ban, the firewall, or
    /// a connection limit when the server has too many polite refusals in flight already.
    DroppedAtAccept,
    /// A connection limit: `* BYE` or `421` instead of a greeting.
    Busy(String),
    /// Anything else (connect failed, timeout, certificate...).
    Broken(String),
}

/// The answer to one login attempt.
#[derive(Debug)]
pub enum Answer {
    /// Logged in.
    Accepted,
    /// `NO` or `535`: the session is still open.
    Refused,
    /// Refused, and the server closes the session (the last failure it allows per connection:
    /// `421` in SMTP).
    RefusedAndClosed,
    /// The session was closed without an answer (e.g. its source was just banned).
    Closed,
    /// A temporary failure (`454`, `NO [UNAVAILABLE]`).
    Temporary(String),
    /// Anything else: a protocol error, a timeout.
    Broken(String),
}

/// A session at the point where a login can be tried (after the greeting, and EHLO for SMTP).
pub struct Session {
    io: BufReader<TlsStream<TcpStream>>,
    proto: Proto,
    timeout: Duration,
    tag: u32,
    line: Vec<u8>,
}

/// TCP from `local`, TLS, greeting (and EHLO for SMTP).
pub async fn open(servers: &Servers, proto: Proto, local: Option<IpAddr>, timeout: Duration) -> Opened {
    let target = servers.target(proto);
    let tcp = match tcp_connect(target.addr, local, timeout).await {
        Ok(tcp) => tcp,
        // Refused before TLS can look like a reset on a quick enough connect.
        Err(e) if dropped(&e) => return Opened::DroppedAtAccept,
        Err(e) => return Opened::Broken(format!("connect: {e}")),
    };
    let tls = match tokio::time::timeout(timeout, target.connector.connect(target.name.clone(), tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) if dropped(&e) => return Opened::DroppedAtAccept,
        Ok(Err(e)) => return Opened::Broken(format!("TLS handshake: {e}")),
        Err(_) => return Opened::Broken(format!("TLS handshake: none within {timeout:?}")),
    };
    let mut session = Session { io: BufReader::new(tls), proto, timeout, tag: 0, line: Vec::new() };
    let greeting = match session.read_line().await {
        Ok(line) => line,
        Err(e) => return Opened::Broken(format!("greeting: {e}")),
    };
    match proto {
        Proto::Imap if greeting.starts_with("* OK") => Opened::Ready(Box::new(session)),
        Proto::Imap if greeting.starts_with("* BYE") => Opened::Busy(greeting),
        Proto::Imap => Opened::Broken(format!("greeting: {greeting}")),
        Proto::Smtp => {
            let greeting = match session.smtp_reply(greeting).await {
                Ok(reply) => reply,
                Err(e) => return Opened::Broken(format!("greeting: {e}")),
            };
            match code(&greeting) {
                220 => {}
                421 => return Opened::Busy(greeting),
                _ => return Opened::Broken(format!("greeting: {greeting}")),
            }
            if let Err(e) = session.send(b"EHLO guard.bench\r\n").await {
                return Opened::Broken(format!("EHLO: {e}"));
            }
            match session.next_smtp_reply().await {
                Ok(reply) if code(&reply) == 250 => Opened::Ready(Box::new(session)),
                Ok(reply) => Opened::Broken(format!("EHLO: {reply}")),
                Err(e) => Opened::Broken(format!("EHLO: {e}")),
            }
        }
    }
}

/// The peer went away under us: what a dropped connection looks like from the client.
fn dropped(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe)
}

fn code(reply: &str) -> u16 {
    reply.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0)
}

impl Session {
    /// One login attempt: `LOGIN user pass`, or `AUTH PLAIN` with an initial response.
    /// Returns the answer and the time from sending the command to reading its answer.
    pub async fn login(&mut self, user: &str, password: &str) -> (Answer, Duration) {
        let line = match self.proto {
            Proto::Imap => {
                self.tag += 1;
                format!("g{} LOGIN {} {}\r\n", self.tag, quoted(user), quoted(password))
            }
            Proto::Smtp => {
                let token = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
                format!("AUTH PLAIN {token}\r\n")
            }
        };
        let sent = Instant::now();
        if let Err(e) = self.send(line.as_bytes()).await {
            return (if dropped(&e) { Answer::Closed } else { Answer::Broken(format!("write: {e}")) }, sent.elapsed());
        }
        let answer = match self.proto {
            Proto::Imap => self.imap_answer().await,
            Proto::Smtp => self.smtp_answer().await,
        };
        (answer, sent.elapsed())
    }

    /// Sends nothing and reads until the server closes the session (or `limit` passes): a
    /// silent client holding a connection slot. Whether the server closed it.
    pub async fn wait_closed(&mut self, limit: Duration) -> bool {
        tokio::time::timeout(limit, async {
            loop {
                match self.read_line().await {
                    // A goodbye (`* BYE`, `421`) comes before the close; a timeout is only the
                    // per-step bound of `read_line`.
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::TimedOut => {}
                    Err(_) => break,
                }
            }
        })
        .await
        .is_ok()
    }

    /// LOGOUT or QUIT, answer awaited (bounded), then the TLS close.
    pub async fn close(mut self) {
        let line: &[u8] = match self.proto {
            Proto::Imap => b"z LOGOUT\r\n",
            Proto::Smtp => b"QUIT\r\n",
        };
        let timeout = self.timeout.min(Duration::from_secs(5));
        let _ = tokio::time::timeout(timeout, async {
            if self.send(line).await.is_ok() {
                // IMAP: `* BYE` then `z OK`; SMTP: `221`.
                while let Ok(l) = self.read_line().await {
                    if l.starts_with("z ") || l.starts_with("221") {
                        break;
                    }
                }
            }
            let _ = self.io.get_mut().shutdown().await;
        })
        .await;
    }

    async fn imap_answer(&mut self) -> Answer {
        let tag = format!("g{} ", self.tag);
        loop {
            let line = match self.read_line().await {
                Ok(line) => line,
                Err(e) if dropped(&e) => return Answer::Closed,
                Err(e) => return Answer::Broken(e.to_string()),
            };
            if line.starts_with("* BYE") {
                // Before the tagged answer: the session is being closed under the command.
                return Answer::Closed;
            }
            if line.starts_with("* ") {
                continue;
            }
            let Some(rest) = line.strip_prefix(&tag) else {
                return Answer::Broken(format!("unexpected: {line}"));
            };
            let upper = rest.to_ascii_uppercase();
            return if upper.starts_with("OK") {
                Answer::Accepted
            } else if upper.starts_with("NO [UNAVAILABLE]") {
                Answer::Temporary(line)
            } else if upper.starts_with("NO") {
                Answer::Refused
            } else {
                Answer::Broken(line)
            };
        }
    }

    async fn smtp_answer(&mut self) -> Answer {
        let reply = match self.next_smtp_reply().await {
            Ok(reply) => reply,
            Err(e) if dropped(&e) => return Answer::Closed,
            Err(e) => return Answer::Broken(e.to_string()),
        };
        match code(&reply) {
            235 => Answer::Accepted,
            535 => Answer::Refused,
            // The failure that ends the session, or a session cut (ban, shutdown).
            421 if reply.contains("authentication") => Answer::RefusedAndClosed,
            421 => Answer::Closed,
            454 => Answer::Temporary(reply),
            _ => Answer::Broken(reply),
        }
    }

    async fn next_smtp_reply(&mut self) -> std::io::Result<String> {
        let first = self.read_line().await?;
        self.smtp_reply(first).await
    }

    /// Reads the continuation lines of a reply whose first line is `first`; the lines are
    /// joined with ` | `.
    async fn smtp_reply(&mut self, first: String) -> std::io::Result<String> {
        let mut reply = first;
        let mut last = reply.clone();
        while last.as_bytes().get(3) == Some(&b'-') {
            last = self.read_line().await?;
            reply.push_str(" | ");
            reply.push_str(&last);
        }
        Ok(reply)
    }

    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let io = self.io.get_mut();
        let write = async {
            io.write_all(bytes).await?;
            io.flush().await
        };
        tokio::time::timeout(self.timeout, write).await.map_err(|_| std::io::Error::from(ErrorKind::TimedOut))?
    }

    /// One line, CRLF removed; EOF is `UnexpectedEof`.
    async fn read_line(&mut self) -> std::io::Result<String> {
        self.line.clear();
        let read = tokio::time::timeout(self.timeout, self.io.read_until(b'\n', &mut self.line))
            .await
            .map_err(|_| std::io::Error::from(ErrorKind::TimedOut))??;
        if read == 0 || !self.line.ends_with(b"\n") {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        let text = String::from_utf8_lossy(&self.line);
        Ok(text.trim_end_matches(['\r', '\n']).to_string())
    }
}
