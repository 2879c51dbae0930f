//! The thin tokio driver of one SMTP session: connect (from the configured source address),
//! TLS from the start or after STARTTLS with the host's policy verifier, and the client state
//! machine's actions carried out with the waits of RFC 5321 §4.5.3.2. Each wait is a deadline
//! for the whole reply, not for each read, so a server sending a byte a second is cut off like
//! a silent one; writes are bounded by a minimum rate. Every wait also ends at the attempt's
//! deadline (`delivery.attempt_timeout`), through the client's own timeout path, so what the
//! session already settled is kept.

use crate::record::TlsDetails;
use crate::settings::Timeouts;
use crate::tls::{CertificateCheck, HostPolicy, TrustRoots};
use portcullis_smtp_client::{Action, Client, ClientConfig, Ending, Message, MessageResult, Stage};
use rustls_pki_types::ServerName;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Read this much at a time; the client bounds what it keeps.
const READ_CHUNK: usize = 8192;

/// What is needed to run one session.
pub(crate) struct Plan<'a> {
    pub host: &'a str,
    pub address: SocketAddr,
    pub source: Option<IpAddr>,
    pub policy: &'a HostPolicy,
    pub implicit_tls: bool,
    pub client: ClientConfig,
    pub timeouts: Timeouts,
    pub roots: &'a TrustRoots,
    /// The end of the whole attempt: no wait lasts beyond it.
    pub deadline: Instant,
}

/// What a session did.
#[derive(Debug)]
pub(crate) struct Run {
    /// The connection itself failed (no session at all).
    pub connect_error: Option<String>,
    pub tls: Option<TlsDetails>,
    pub certificate: CertificateCheck,
    /// The server did not offer STARTTLS.
    pub starttls_missing: bool,
    /// `(index into the messages given, result)` in order.
    pub results: Vec<(usize, MessageResult)>,
    pub ending: Option<Ending>,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(data).await,
            Stream::Tls(s) => {
                s.write_all(data).await?;
                s.flush().await
            }
        }
    }

    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf).await,
            Stream::Tls(s) => s.read(buf).await,
        }
    }

    async fn shutdown(&mut self) {
        let _ = match self {
            Stream::Plain(s) => s.shutdown().await,
            Stream::Tls(s) => s.shutdown().await,
        };
    }
}

/// Runs a session delivering `messages` in order, as many as the connection allows.
pub(crate) async fn run(plan: Plan<'_>, messages: &[&Message]) -> Run {
    let mut run = Run {
        connect_error: None,
        tls: None,
        certificate: CertificateCheck::NotChecked,
        starttls_missing: false,
        results: Vec::new(),
        ending: None,
    };
    let connect_wait = plan.timeouts.connect.min(plan.deadline.saturating_duration_since(Instant::now()));
    let tcp = match connect(plan.address, plan.source, connect_wait).await {
        Ok(tcp) => tcp,
        Err(e) => {
            run.connect_error = Some(e);
            return run;
        }
    };
    let (mut stream, mut client) = if plan.implicit_tls {
        match handshake(&plan, tcp, &mut run).await {
            Ok((tls, verified)) => (Stream::Tls(Box::new(tls)), Client::over_tls(plan.client.clone(), verified)),
            Err(why) => {
                run.connect_error = Some(why);
                return run;
            }
        }
    } else {
        (Stream::Plain(tcp), Client::new(plan.client.clone()))
    };
    let mut next = 0usize;
    let mut current = None;
    let mut deadline: Option<(Stage, Instant)> = None;
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match client.next_action() {
            Action::Read => {
                let output = client.take_output();
                if let Err(e) = write(&mut stream, &output, &plan.timeouts, plan.deadline).await {
                    client.io_failed(e);
                    continue;
                }
                let stage = client.waiting_for().unwrap_or(Stage::Quit);
                if !output.is_empty() || deadline.is_none_or(|(s, _)| s != stage) {
                    deadline = Some((stage, Instant::now() + wait(&plan.timeouts, stage)));
                }
                let until = deadline.map_or_else(Instant::now, |(_, at)| at).min(plan.deadline);
                match tokio::time::timeout_at(until, stream.read(&mut buf)).await {
                    Ok(Ok(0)) => client.peer_closed(),
                    Ok(Ok(n)) => client.feed(&buf[..n]),
                    Ok(Err(e)) => client.io_failed(e.to_string()),
                    Err(_) => client.timed_out(),
                }
            }
            Action::StartTls => {
                let output = client.take_output();
                if let Err(e) = write(&mut stream, &output, &plan.timeouts, plan.deadline).await {
                    client.tls_failed(e);
                    continue;
                }
                let Stream::Plain(tcp) = stream else {
                    client.tls_failed("STARTTLS inside TLS".into());
                    break;
                };
                match handshake(&plan, tcp, &mut run).await {
                    Ok((tls, verified)) => {
                        stream = Stream::Tls(Box::new(tls));
                        client.tls_established(verified);
                    }
                    Err(why) => {
                        client.tls_failed(why);
                        // The socket went into the failed handshake: nothing more to say.
                        run.ending = close_client(&mut client, &mut run, &mut current);
                        return run;
                    }
                }
                deadline = None;
            }
            Action::Ready => match messages.get(next) {
                Some(message) => {
                    current = Some(next);
                    next += 1;
                    if client.send_message(message).is_err() {
                        break;
                    }
                }
                None => {
                    if client.quit().is_err() {
                        break;
                    }
                }
            },
            Action::MessageDone(result) => {
                if let Some(index) = current.take() {
                    run.results.push((index, result));
                }
            }
            Action::Close(ending) => {
                let output = client.take_output();
                if !output.is_empty() {
                    let _ = tokio::time::timeout(Duration::from_secs(5), stream.write_all(&output)).await;
                }
                stream.shutdown().await;
                run.starttls_missing |= starttls_missing(&ending);
                run.ending = Some(ending);
                return run;
            }
        }
    }
    run
}

/// After a failed handshake: collect what the client reports, without any more I/O.
fn close_client(client: &mut Client, run: &mut Run, current: &mut Option<usize>) -> Option<Ending> {
    for _ in 0..8 {
        match client.next_action() {
            Action::MessageDone(result) => {
                if let Some(index) = current.take() {
                    run.results.push((index, result));
                }
            }
            Action::Close(ending) => return Some(ending),
            _ => return None,
        }
    }
    None
}

fn starttls_missing(ending: &Ending) -> bool {
    matches!(ending, Ending::Failed(f) if f.cause == portcullis_smtp_client::Cause::StartTlsUnavailable)
}

async fn connect(address: SocketAddr, source: Option<IpAddr>, timeout: Duration) -> Result<TcpStream, String> {
    let socket = match address {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| e.to_string())?;
    if let Some(source) = source {
        socket.bind(SocketAddr::new(source, 0)).map_err(|e| format!("binding the source address {source}: {e}"))?;
    }
    match tokio::time::timeout(timeout, socket.connect(address)).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no connection within {timeout:?}")),
    }
}

/// The TLS handshake under the host's policy; returns the stream and whether the
/// certificate authenticates the server for REQUIRETLS.
async fn handshake(plan: &Plan<'_>, tcp: TcpStream, run: &mut Run) -> Result<(TlsStream<TcpStream>, bool), String> {
    let (config, verifier) = plan.roots.client_config(plan.policy, plan.host);
    // SNI is the exchanger's name (RFC 7672 §8.1: the TLSA base domain).
    let name = ServerName::try_from(plan.host.to_string()).map_err(|e| format!("{}: {e}", plan.host))?;
    let until = (Instant::now() + plan.timeouts.tls_handshake).min(plan.deadline);
    let result = tokio::time::timeout_at(until, TlsConnector::from(config).connect(name, tcp)).await;
    run.certificate = verifier.verdict();
    let tls = match result {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err(format!("no TLS handshake within {:?}", plan.timeouts.tls_handshake)),
    };
    let connection = tls.get_ref().1;
    run.tls = Some(TlsDetails {
        version: match connection.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".into(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".into(),
            other => format!("{other:?}"),
        },
        cipher: connection.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())).unwrap_or_default(),
    });
    let verified = plan.policy.authenticates() && run.certificate == CertificateCheck::Valid;
    Ok((tls, verified))
}

/// Writes `data` within the command wait, plus the time `min_data_rate` allows for its size,
/// and never beyond the attempt's deadline.
async fn write(stream: &mut Stream, data: &[u8], timeouts: &Timeouts, deadline: Instant) -> Result<(), String> {
    if data.is_empty() {
        return Ok(());
    }
    let base = if data.len() > 4096 { timeouts.data_block } else { timeouts.command };
    let allowed = base + Duration::from_secs(data.len() as u64 / timeouts.min_data_rate.max(1));
    let until = (Instant::now() + allowed).min(deadline);
    match tokio::time::timeout_at(until, stream.write_all(data)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("sending {} octets took longer than {allowed:?}", data.len())),
    }
}

/// The wait for a reply at `stage` (RFC 5321 §4.5.3.2).
fn wait(t: &Timeouts, stage: Stage) -> Duration {
    match stage {
        Stage::Greeting | Stage::Connect => t.greeting,
        Stage::MailFrom => t.mail,
        Stage::RcptTo => t.rcpt,
        Stage::Data => t.data_start,
        Stage::DataEnd => t.data_end,
        Stage::TlsHandshake => t.tls_handshake,
        Stage::Ehlo | Stage::Helo | Stage::StartTls | Stage::Auth | Stage::Rset | Stage::Quit => t.command,
    }
}
