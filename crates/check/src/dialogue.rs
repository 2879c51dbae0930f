//! The plaintext side of the mail protocols, as the audit needs it: greeting and EHLO,
//! STARTTLS (optionally with a command pipelined behind it), what is offered or accepted before
//! TLS, and MAIL FROM without AUTH. No credentials are ever sent.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::net::{connect, Conn};
use crate::proto::{ehlo_keywords, imap_capabilities, smtp_auth_mechanisms, smtp_line, Protocol};
use crate::report::{Finding, Kind};
use crate::tls;

pub const EHLO: &str = "EHLO portcullis-check.invalid";

pub enum Opened {
    /// The server said no to STARTTLS (its reply).
    Refused(String),
    Failed(String),
}

impl From<io::Error> for Opened {
    fn from(e: io::Error) -> Opened {
        Opened::Failed(e.to_string())
    }
}

/// Ends a session politely (QUIT, LOGOUT) and waits briefly for the answer, so that the
/// server logs a normal end rather than a dropped connection.
pub async fn goodbye<S>(conn: &mut Conn<S>, protocol: Protocol)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (command, last) = match protocol {
        Protocol::Smtp => ("QUIT", "221"),
        Protocol::Imap => ("z LOGOUT", "z "),
        Protocol::Pop3 => ("QUIT", "+OK"),
    };
    if conn.send(command).await.is_err() {
        return;
    }
    let wait = conn.timeout.min(Duration::from_secs(1));
    while let Ok(Some(line)) = conn.line_within(wait).await {
        if line.starts_with(last) || line.starts_with("-ERR") {
            break;
        }
    }
}

/// Runs the protocol's STARTTLS. With `inject`, a harmless command that ends the session (QUIT,
/// LOGOUT) is sent in the same packet right behind it, as in the STARTTLS injection attack
/// (CVE-2011-0411 and its many siblings). Returns the stream and whether anything was left over.
pub async fn starttls(
    tcp: TcpStream,
    protocol: Protocol,
    timeout: Duration,
    inject: bool,
) -> Result<(TcpStream, bool), Opened> {
    let mut conn = Conn::new(tcp, timeout);
    let greeting = conn.line().await?;
    match protocol {
        Protocol::Smtp => {
            rest_of_smtp_reply(&mut conn, &greeting).await?;
            let (code, _) = conn.smtp(EHLO).await?;
            if code != 250 {
                return Err(Opened::Refused(format!("EHLO answered {code}")));
            }
            conn.send_raw(if inject { b"STARTTLS\r\nQUIT\r\n" } else { b"STARTTLS\r\n" }).await?;
            let (code, lines) = conn.smtp_reply().await?;
            if code != 220 {
                return Err(Opened::Refused(lines.join(" ")));
            }
        }
        Protocol::Imap => {
            conn.send_raw(if inject { b"s STARTTLS\r\ninj LOGOUT\r\n" } else { b"s STARTTLS\r\n" }).await?;
            let lines = conn.imap_until_tagged(&["s"]).await?;
            let last = lines.last().cloned().unwrap_or_default();
            if !last.to_ascii_uppercase().starts_with("S OK") {
                return Err(Opened::Refused(last));
            }
        }
        Protocol::Pop3 => {
            conn.send_raw(if inject { b"STLS\r\nQUIT\r\n" } else { b"STLS\r\n" }).await?;
            let line = conn.line().await?;
            if !line.starts_with("+OK") {
                return Err(Opened::Refused(line));
            }
        }
    }
    // Nothing of the server's can be pending now unless it answered something we pipelined:
    // with `inject`, give such an answer a moment to arrive (the server waits for our
    // ClientHello, so no TLS byte can be read here by mistake).
    let mut extra = conn.has_buffered();
    if inject && !extra {
        extra = matches!(conn.line_within(Duration::from_millis(100)).await, Ok(Some(_))) || conn.has_buffered();
    }
    Ok((conn.into_inner(), extra))
}

pub async fn rest_of_smtp_reply<S>(conn: &mut Conn<S>, first: &str) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut last = smtp_line(first).map(|(_, last)| last).unwrap_or(true);
    while !last {
        let line = conn.line().await?;
        last = smtp_line(&line).map(|(_, last)| last).unwrap_or(true);
    }
    Ok(())
}

/// The checks on the plaintext side of a STARTTLS port: does it offer or accept
/// authentication before TLS? No credentials are ever sent: a mechanism is started and
/// cancelled, or a made-up user name is given and the session ended.
pub async fn before_tls(
    port: u16,
    conn: &mut Conn<TcpStream>,
    protocol: Protocol,
    greeting: &str,
) -> io::Result<Vec<Finding>> {
    let mut findings = Vec::new();
    match protocol {
        Protocol::Smtp => {
            rest_of_smtp_reply(conn, greeting).await?;
            let (code, ehlo) = conn.smtp(EHLO).await?;
            if code != 250 {
                return Ok(findings);
            }
            let keywords = ehlo_keywords(&ehlo);
            let advertised = smtp_auth_mechanisms(&keywords);
            let mechanism = advertised
                .iter()
                .flatten()
                .find(|m| *m == "PLAIN" || *m == "LOGIN")
                .cloned()
                .unwrap_or_else(|| "PLAIN".into());
            let (code, _) = conn.smtp(&format!("AUTH {mechanism}")).await?;
            let accepted = code == 334;
            if accepted {
                conn.smtp("*").await?;
            }
            goodbye(conn, Protocol::Smtp).await;
            let mut facts = Vec::new();
            if let Some(m) = &advertised {
                facts.push(format!("AUTH {} is advertised before STARTTLS", m.join(" ")));
            }
            if accepted {
                facts.push(format!("AUTH {mechanism} is accepted without TLS (334)"));
            }
            if !facts.is_empty() {
                findings.push(Finding::new(port, Kind::AuthBeforeTls, facts.join("; ")));
            }
        }
        Protocol::Imap => {
            let mut capabilities = imap_capabilities(greeting);
            for line in conn.imap("a", "CAPABILITY").await? {
                if let Some(c) = imap_capabilities(&line) {
                    capabilities = Some(c);
                }
            }
            let capabilities = capabilities.unwrap_or_default();
            let login_open = !capabilities.iter().any(|c| c == "LOGINDISABLED");
            let advertised: Vec<&String> =
                capabilities.iter().filter(|c| *c == "AUTH=PLAIN" || *c == "AUTH=LOGIN").collect();
            conn.send("b AUTHENTICATE PLAIN").await?;
            let mut accepted = false;
            loop {
                let line = conn.line().await?;
                if line.starts_with('+') {
                    accepted = true;
                    conn.send("*").await?;
                } else if line.starts_with("b ") {
                    break;
                }
            }
            goodbye(conn, Protocol::Imap).await;
            let mut facts = Vec::new();
            if login_open {
                facts.push("LOGIN is allowed before TLS (no LOGINDISABLED capability)".to_string());
            }
            if !advertised.is_empty() {
                facts.push(format!(
                    "{} advertised before TLS",
                    advertised.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(" ")
                ));
            }
            if accepted {
                facts.push("AUTHENTICATE PLAIN is accepted without TLS".to_string());
            }
            if !facts.is_empty() {
                findings.push(Finding::new(port, Kind::PlaintextLogin, facts.join("; ")));
            }
        }
        Protocol::Pop3 => {
            // What it advertises (RFC 2449), then what it accepts.
            conn.send("CAPA").await?;
            let mut capabilities = Vec::new();
            if conn.line().await?.starts_with("+OK") {
                loop {
                    let line = conn.line().await?;
                    if line == "." {
                        break;
                    }
                    capabilities.push(line.to_ascii_uppercase());
                }
            }
            let advertised: Vec<String> = capabilities
                .iter()
                .filter_map(|c| match c.split_whitespace().collect::<Vec<_>>().as_slice() {
                    ["USER"] => Some("USER".to_string()),
                    ["SASL", mechanisms @ ..] => {
                        let plain: Vec<&str> =
                            mechanisms.iter().copied().filter(|m| *m == "PLAIN" || *m == "LOGIN").collect();
                        (!plain.is_empty()).then(|| format!("SASL {}", plain.join(" ")))
                    }
                    _ => None,
                })
                .collect();
            conn.send("AUTH PLAIN").await?;
            let line = conn.line().await?;
            let sasl = line.starts_with('+') && !line.starts_with("+OK");
            if sasl {
                conn.send("*").await?;
                conn.line().await?;
            }
            conn.send("USER portcullis-check").await?;
            let user = conn.line().await?.starts_with("+OK");
            goodbye(conn, Protocol::Pop3).await;
            let mut facts = Vec::new();
            if !advertised.is_empty() {
                facts.push(format!("{} advertised before TLS", advertised.join(", ")));
            }
            if user {
                facts.push("USER is accepted before TLS (+OK: the password would follow in the clear)".to_string());
            }
            if sasl {
                facts.push("AUTH PLAIN is accepted without TLS".to_string());
            }
            if !facts.is_empty() {
                findings.push(Finding::new(port, Kind::PlaintextLogin, facts.join("; ")));
            }
        }
    }
    Ok(findings)
}

/// On an authenticated-only (submission) port, does MAIL FROM go through without AUTH?
pub async fn mail_without_auth<S>(conn: &mut Conn<S>, domain: &str) -> io::Result<Option<String>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (code, _) = conn.smtp(EHLO).await?;
    if code != 250 {
        return Err(io::Error::other(format!("EHLO answered {code}")));
    }
    let (code, lines) = conn.smtp(&format!("MAIL FROM:<portcullis-check@{domain}>")).await?;
    let _ = conn.smtp("RSET").await;
    goodbye(conn, Protocol::Smtp).await;
    Ok((200..300)
        .contains(&code)
        .then(|| format!("MAIL FROM is accepted without AUTH on a submission port ({})", lines.join(" "))))
}

pub enum Injection {
    /// The pipelined command was answered inside TLS (the evidence).
    Executed(String),
    /// TLS came up and the pipelined command was gone.
    Discarded,
    /// The server would not go on with pipelined input: it hung up, or fed the plaintext to
    /// TLS and the handshake broke (Dovecot does the latter). Either way nothing ran.
    Refused(String),
}

/// Pipelines a session-ending command behind STARTTLS, completes the handshake, and asks
/// something harmless: if the answer inside TLS is the pipelined command's, the server ran
/// plaintext input (which an attacker on the path can insert) as if it came over TLS.
/// Called only on ports where STARTTLS and a handshake are known to work.
pub async fn injection(
    addr: SocketAddr,
    name: ServerName<'static>,
    timeout: Duration,
    protocol: Protocol,
) -> Result<Injection, String> {
    let tcp = connect(addr, timeout).await.map_err(|state| format!("cannot connect again ({state:?})"))?;
    let (tcp, extra) = starttls(tcp, protocol, timeout, true).await.map_err(|e| match e {
        Opened::Refused(r) => format!("STARTTLS refused: {r}"),
        Opened::Failed(e) => e,
    })?;
    if extra {
        return Err("the server answered the pipelined command before TLS started".into());
    }
    let session = match tls::handshake(tcp, name, timeout).await {
        Ok(session) => session,
        Err(e) => return Ok(Injection::Refused(e)),
    };
    let mut conn = Conn::new(session.stream, timeout);
    let io = |e: io::Error| e.to_string();
    let executed = |command: &str, evidence: String| {
        Injection::Executed(format!("{command} pipelined behind STARTTLS was run inside TLS ({evidence})"))
    };
    let verdict = match protocol {
        Protocol::Smtp => {
            let (code, lines) = conn.smtp("NOOP").await.map_err(io)?;
            match code {
                221 => Ok(executed("QUIT", lines.join(" "))),
                250 => Ok(Injection::Discarded),
                other => Err(format!("NOOP answered {other}")),
            }
        }
        Protocol::Imap => {
            conn.send("chk NOOP").await.map_err(io)?;
            let lines = conn.imap_until_tagged(&["inj", "chk"]).await.map_err(io)?;
            let ran = lines.iter().any(|l| l.starts_with("inj ") || l.to_ascii_uppercase().starts_with("* BYE"));
            Ok(if ran { executed("LOGOUT", lines.join(" | ")) } else { Injection::Discarded })
        }
        Protocol::Pop3 => {
            conn.send("NOOP").await.map_err(io)?;
            let first = conn.line().await.map_err(io)?;
            if !first.starts_with("+OK") {
                return Ok(Injection::Discarded);
            }
            // +OK to NOOP before login is unusual; +OK then hanging up is QUIT's answer.
            match conn.line_within(timeout.min(Duration::from_secs(1))).await {
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    Ok(executed("QUIT", format!("{first}, then the server hung up")))
                }
                _ => Ok(Injection::Discarded),
            }
        }
    };
    if let Ok(Injection::Discarded) = verdict {
        goodbye(&mut conn, protocol).await;
    }
    verdict
}
