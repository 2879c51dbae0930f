//! One port, start to end: is it open, what does it speak, how does TLS start, what does it give
//! away before TLS (`dialogue`), which versions and suites it accepts (hand-built probes, judged
//! in `verdict`), its certificate (`cert`), STARTTLS injection and MAIL FROM without AUTH.
//!
//! Probes of one port run one after another, each on its own connection: running them side by
//! side would look like a connection flood to the server (Portcullis allows 20 per address by
//! default) and refused connections would read as refused versions. Ports run concurrently.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::RootCertStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::dialogue::{
    before_tls, goodbye, injection, mail_without_auth, rest_of_smtp_reply, starttls, Injection, Opened,
};
use crate::hello::{self, Answer, FlightReader};
use crate::net::{connect, Conn};
use crate::proto::{classify_greeting, Protocol, Service, Target};
use crate::report::{Finding, Kind, PortReport, PortState, TlsSummary};
use crate::suites::Offer;
use crate::verdict::{self, probe_name, Observed, PROBES};
use crate::{cert, tls};

/// What every port's audit shares.
pub struct Ctx {
    pub ip: IpAddr,
    pub timeout: Duration,
    /// The name clients use: SNI and the certificate name check. None for a bare address.
    pub name: Option<ServerName<'static>>,
    pub roots: RootCertStore,
    /// Unix seconds, fixed for the whole audit.
    pub now: i64,
}

impl Ctx {
    fn tls_name(&self) -> ServerName<'static> {
        self.name.clone().unwrap_or(ServerName::IpAddress(self.ip.into()))
    }

    fn sni(&self) -> Option<&str> {
        match &self.name {
            Some(ServerName::DnsName(n)) => Some(n.as_ref()),
            _ => None,
        }
    }

    fn mail_domain(&self) -> String {
        self.sni().unwrap_or("example.org").to_string()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Implicit,
    StartTls(Protocol),
}

/// How many answers' worth of time (`--timeout` each) the audit of one port may take in all.
/// A server that lets every probe time out needs about 20; only one that stretches every
/// answer (a trickle, replies that never end) gets this far.
const PORT_ANSWERS: u32 = 32;

/// [`audit_port`], stopped when the port has had its time: the report then says so, and the
/// port gets no grade (what was seen before the stop is not the whole story).
pub async fn audit_port_in_time(ctx: Arc<Ctx>, target: Target) -> (PortReport, Vec<Finding>) {
    let budget = ctx.timeout * PORT_ANSWERS;
    match tokio::time::timeout(budget, audit_port(ctx, target)).await {
        Ok(done) => done,
        Err(_) => {
            let note = format!("the audit was stopped after {budget:?}: the server answered too slowly to be audited");
            let report = PortReport {
                port: target.port,
                state: PortState::Open,
                service: Some("unknown".into()),
                tls: None,
                certificate: None,
                grade: None,
                notes: vec![note],
            };
            (report, Vec::new())
        }
    }
}

/// Audits one port.
pub async fn audit_port(ctx: Arc<Ctx>, target: Target) -> (PortReport, Vec<Finding>) {
    let port = target.port;
    let mut report = PortReport {
        port,
        state: PortState::Open,
        service: None,
        tls: None,
        certificate: None,
        grade: None,
        notes: vec![],
    };
    let mut findings = Vec::new();
    let hint = target.service.or(Service::for_port(port));
    // On a relay port (25) anyone may hand in mail for local users; elsewhere SMTP is submission.
    let relay = hint == Some(Service::Smtp);

    let tcp = match connect(SocketAddr::new(ctx.ip, port), ctx.timeout).await {
        Ok(tcp) => tcp,
        Err(state) => {
            report.state = state;
            return (report, findings);
        }
    };
    // Plaintext services greet first; implicit-TLS ones wait for our ClientHello. A port named
    // as implicit TLS gets a short wait only, an unknown one a medium one.
    let greet_wait = match hint {
        Some(s) if !s.implicit_tls() => ctx.timeout,
        Some(_) => ctx.timeout.min(Duration::from_millis(500)),
        None => ctx.timeout.min(Duration::from_secs(2)),
    };
    let mut conn = Conn::new(tcp, ctx.timeout);
    let mode = match conn.line_within(greet_wait).await {
        Ok(None) => Mode::Implicit,
        Ok(Some(greeting)) => match classify_greeting(&greeting) {
            Some(protocol) => {
                let service = Service::observed(protocol, false, relay);
                report.service = Some(service.name().into());
                expectation_note(&mut report, target, service);
                match before_tls(port, &mut conn, protocol, &greeting).await {
                    Ok(pre) => findings.extend(pre),
                    Err(e) => report.notes.push(format!("the plaintext checks were cut short: {e}")),
                }
                Mode::StartTls(protocol)
            }
            None => {
                report.service = Some("unknown".into());
                report.notes.push(format!("not SMTP, IMAP or POP3; it said {:?}", truncate(&greeting)));
                return (report, findings);
            }
        },
        Err(e) => {
            report.service = Some("unknown".into());
            report.notes.push(format!("it hung up without a greeting ({e})"));
            return (report, findings);
        }
    };
    drop(conn);

    // The handshake a modern client makes; also the session the checks inside TLS use.
    let mut protocol = match mode {
        Mode::StartTls(p) => Some(p),
        Mode::Implicit => None,
    };
    let main = match open(&ctx, port, mode).await {
        Err(Opened::Refused(reply)) => {
            let kind = if relay { Kind::NoTlsRelay } else { Kind::NoTls };
            findings.push(Finding::new(port, kind, format!("No TLS: STARTTLS is refused ({})", truncate(&reply))));
            report.tls = Some(TlsSummary { mode: "none", ..TlsSummary::default() });
            return (report, findings);
        }
        Err(Opened::Failed(e)) => Err(e),
        Ok(tcp) => tls::handshake(tcp, ctx.tls_name(), ctx.timeout).await,
    };
    let mut negotiated = None;
    let mut chain = Vec::new();
    let main_error = match main {
        Ok(session) => {
            negotiated = Some(session.version);
            report.tls = Some(TlsSummary { negotiated: Some(session.describe()), ..TlsSummary::default() });
            chain = session.chain;
            let mut conn = Conn::new(session.stream, ctx.timeout);
            if mode == Mode::Implicit {
                match conn.line().await {
                    Ok(greeting) => match classify_greeting(&greeting) {
                        Some(p) => {
                            protocol = Some(p);
                            let service = Service::observed(p, true, relay);
                            report.service = Some(service.name().into());
                            expectation_note(&mut report, target, service);
                            if p == Protocol::Smtp {
                                if let Err(e) = rest_of_smtp_reply(&mut conn, &greeting).await {
                                    report.notes.push(format!("the SMTP greeting was cut short: {e}"));
                                }
                            }
                        }
                        None => report
                            .notes
                            .push(format!("not SMTP, IMAP or POP3 inside TLS; it said {:?}", truncate(&greeting))),
                    },
                    Err(e) => report.notes.push(format!("no greeting inside TLS ({e})")),
                }
            }
            match protocol {
                Some(Protocol::Smtp) if !relay => match mail_without_auth(&mut conn, &ctx.mail_domain()).await {
                    Ok(Some(evidence)) => findings.push(Finding::new(port, Kind::MailWithoutAuth, evidence)),
                    Ok(None) => {}
                    Err(e) => report.notes.push(format!("the MAIL FROM check was inconclusive: {e}")),
                },
                Some(p) => goodbye(&mut conn, p).await,
                None => {}
            }
            None
        }
        Err(e) => Some(e),
    };
    let tls_summary = report.tls.get_or_insert_with(TlsSummary::default);
    tls_summary.mode = if mode == Mode::Implicit { "implicit" } else { "starttls" };

    // The hand-built probes. The chain comes from them only when rustls could not handshake.
    let want_certificates = chain.is_empty();
    let mut answers = Vec::new();
    for (version, offer) in PROBES {
        answers.push((version, offer, hello_probe(&ctx, port, mode, version, offer, want_certificates).await));
    }
    if chain.is_empty() {
        if let Some(certs) = answers.iter().find_map(|(_, _, a)| match a {
            Ok(Answer::Hello { certificates, .. }) if !certificates.is_empty() => Some(certificates.clone()),
            _ => None,
        }) {
            chain = certs.into_iter().map(rustls::pki_types::CertificateDer::from).collect();
        }
    }
    let seen = Observed {
        answers: &answers,
        negotiated,
        main_error: main_error.as_deref(),
        starttls: matches!(mode, Mode::StartTls(_)),
    };
    let verdict = verdict::judge(port, &seen);
    if mode == Mode::Implicit && protocol.is_none() && !verdict.speaks_tls && !verdict.tls_answered {
        report.service = Some("unknown".into());
        report.tls = None;
        report.notes.push("silent: no greeting, and no TLS handshake".into());
        return (report, findings);
    }
    if report.service.is_none() {
        // TLS works but the protocol inside could not be read: fall back on the port's name.
        report.service = Some(hint.map(|s| s.name()).unwrap_or("unknown").into());
    }
    let tls_summary = report.tls.get_or_insert_with(TlsSummary::default);
    tls_summary.versions = verdict.versions.iter().map(|(v, ok)| (hello::version_name(*v), *ok)).collect();
    tls_summary.probes = answers
        .iter()
        .map(|(v, o, a)| {
            (probe_name(*v, *o), a.as_ref().map(Answer::describe).unwrap_or_else(|e| format!("inconclusive: {e}")))
        })
        .collect();
    findings.extend(verdict.findings);
    report.notes.extend(verdict.notes);

    if !chain.is_empty() {
        let (summary, cert_findings) =
            cert::evaluate(port, &chain, &ctx.roots, ctx.name.as_ref(), Some(ctx.ip), ctx.now);
        report.certificate = Some(summary);
        findings.extend(cert_findings);
    }

    if let Mode::StartTls(protocol) = mode {
        if verdict.speaks_tls {
            match injection(SocketAddr::new(ctx.ip, port), ctx.tls_name(), ctx.timeout, protocol).await {
                Ok(Injection::Executed(evidence)) => {
                    findings.push(Finding::new(port, Kind::StartTlsInjection, evidence))
                }
                Ok(Injection::Discarded) => {}
                Ok(Injection::Refused(how)) => {
                    report.notes.push(format!("STARTTLS injection: the pipelined command was not run ({how})"))
                }
                Err(e) => report.notes.push(format!("the STARTTLS injection check was inconclusive: {e}")),
            }
        }
    }
    (report, findings)
}

fn expectation_note(report: &mut PortReport, target: Target, observed: Service) {
    if let Some(expected) = target.service {
        if expected.protocol() != observed.protocol() || expected.implicit_tls() != observed.implicit_tls() {
            report.notes.push(format!("named {} but it is {}", expected.name(), observed.name()));
        }
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(80).collect()
}

/// A connection ready for the first TLS byte: at once for implicit TLS, after the protocol's
/// STARTTLS otherwise.
async fn open(ctx: &Ctx, port: u16, mode: Mode) -> Result<TcpStream, Opened> {
    let tcp = connect(SocketAddr::new(ctx.ip, port), ctx.timeout)
        .await
        .map_err(|state| Opened::Failed(format!("cannot connect again ({state:?})")))?;
    match mode {
        Mode::Implicit => Ok(tcp),
        Mode::StartTls(protocol) => {
            let (tcp, extra) = starttls(tcp, protocol, ctx.timeout, false).await?;
            if extra {
                return Err(Opened::Failed("the server sent more than its STARTTLS answer".into()));
            }
            Ok(tcp)
        }
    }
}

/// One hand-built ClientHello and the server's answer to it.
async fn hello_probe(
    ctx: &Ctx,
    port: u16,
    mode: Mode,
    version: u16,
    offer: Offer,
    want_certificates: bool,
) -> Result<Answer, String> {
    let mut tcp = open(ctx, port, mode).await.map_err(|e| match e {
        Opened::Refused(r) => format!("STARTTLS refused: {r}"),
        Opened::Failed(e) => e,
    })?;
    // The client random needs no secrecy (nothing is derived from it), only to look like one.
    let mut random = [0u8; 32];
    let _ = rustls::crypto::ring::default_provider().secure_random.fill(&mut random);
    let record = hello::client_hello(version, offer, ctx.sni(), random);
    if tcp.write_all(&record).await.is_err() {
        return Ok(Answer::Closed);
    }
    let mut reader = FlightReader::new(want_certificates);
    let mut buf = [0u8; 8192];
    // The whole flight is one answer: a server trickling it byte by byte gets `timeout` in all.
    let deadline = tokio::time::Instant::now() + ctx.timeout;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                if let Some(answer) = reader.push(&buf[..n]) {
                    return Ok(answer);
                }
            }
            // Closed, reset or silent: whatever arrived so far is the answer.
            _ => return Ok(reader.finish()),
        }
    }
}
