//! The STARTTLS injection check against a server that has the bug. Neither Portcullis nor the
//! Debian servers in the weak-peer test have it (they discard, or refuse, what was pipelined
//! behind STARTTLS), so the positive case needs a server written to be wrong: a minimal SMTP
//! server here, on loopback, that runs its pre-TLS buffer after the handshake exactly as the
//! vulnerable servers of CVE-2011-0411 did. The same server with the bug fixed must come out
//! clean, so the check is shown to tell the two apart.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use portcullis_check::{audit, Options, Service, Severity, Target};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const NAME: &str = "fake.example.test";

async fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>, vulnerable: bool) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else { return };
        let tls = tls.clone();
        tokio::spawn(async move {
            let _ = session(tcp, tls, vulnerable).await;
        });
    }
}

async fn session(tcp: TcpStream, tls: Arc<rustls::ServerConfig>, vulnerable: bool) -> std::io::Result<()> {
    let mut plain = BufReader::new(tcp);
    plain.get_mut().write_all(b"220 fake ESMTP\r\n").await?;
    let mut line = String::new();
    loop {
        line.clear();
        if plain.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_ascii_uppercase();
        if command.starts_with("EHLO") {
            plain.get_mut().write_all(b"250-fake\r\n250 STARTTLS\r\n").await?;
        } else if command == "STARTTLS" {
            plain.get_mut().write_all(b"220 go ahead\r\n").await?;
            break;
        } else if command == "QUIT" {
            plain.get_mut().write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            plain.get_mut().write_all(b"530 5.7.0 Must issue a STARTTLS command first\r\n").await?;
        }
    }
    // The bug: what the client pipelined behind STARTTLS stays in the buffer and is run as if
    // it had come over TLS. The fix: drop it.
    let pending = if vulnerable { plain.buffer().to_vec() } else { Vec::new() };
    let stream = tokio_rustls::TlsAcceptor::from(tls).accept(plain.into_inner()).await?;
    let mut secure = BufReader::new(stream);
    let mut pending = pending.as_slice();
    loop {
        line.clear();
        if pending.is_empty() {
            if secure.read_line(&mut line).await? == 0 {
                return Ok(());
            }
        } else {
            pending.read_line(&mut line).await?;
        }
        if !answer(secure.get_mut(), line.trim_end()).await? {
            return Ok(());
        }
    }
}

/// Answers one command inside TLS; false once the session is over.
async fn answer<S: AsyncRead + AsyncWrite + Unpin>(out: &mut S, command: &str) -> std::io::Result<bool> {
    let command = command.to_ascii_uppercase();
    if command == "QUIT" {
        out.write_all(b"221 bye\r\n").await?;
        out.shutdown().await?;
        return Ok(false);
    }
    let reply: &[u8] = if command.starts_with("EHLO") {
        b"250-fake\r\n250 AUTH PLAIN\r\n"
    } else if command.starts_with("MAIL") {
        b"530 5.7.0 Authentication required\r\n"
    } else {
        b"250 ok\r\n"
    };
    out.write_all(reply).await?;
    Ok(true)
}

async fn run(vulnerable: bool) -> portcullis_check::Report {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![NAME.to_string()]).unwrap().self_signed(&key).unwrap();
    let mut ca = tempfile::NamedTempFile::new().unwrap();
    ca.write_all(cert.pem().as_bytes()).unwrap();
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    // As Portcullis does: otherwise TLS 1.2 without the extended master secret is a finding too.
    tls.require_ems = true;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(serve(listener, Arc::new(tls), vulnerable));
    let options = Options {
        host: "127.0.0.1".into(),
        targets: vec![Target { port, service: Some(Service::Submission) }],
        ca: Some(ca.path().to_path_buf()),
        timeout: Duration::from_secs(3),
        server_name: Some(NAME.into()),
    };
    let report = audit(&options).await.unwrap();
    server.abort();
    report
}

#[tokio::test]
async fn pipelined_commands_run_inside_tls_are_reported() {
    let report = run(true).await;
    let ids: Vec<_> = report.findings.iter().map(|f| (f.id, f.severity)).collect();
    assert_eq!(ids, [("starttls-injection", Severity::Critical)], "{}", report.to_table());
    assert!(report.findings[0].title.contains("221 bye"), "{}", report.findings[0].title);
    assert_eq!(report.grade, Some(portcullis_check::Grade::F));
}

#[tokio::test]
async fn the_same_server_with_the_bug_fixed_is_clean() {
    let report = run(false).await;
    assert!(report.findings.is_empty(), "{}", report.to_table());
    assert_eq!(report.grade, Some(portcullis_check::Grade::A));
    assert!(report.ports[0].notes.is_empty(), "{:?}", report.ports[0].notes);
}
