//! What the port-25 tests share: a world of test domains served by a DNS server on loopback
//! (`portcullis_testdns`), senders at 127.0.0.x addresses with their SPF, DKIM and DMARC
//! records, a client that delivers over SMTP from a chosen source address, and a reader of
//! what was stored (over IMAP, as the recipient sees it).
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use portcullis_dkim_sign::{Algorithm, Signer, SigningKey};
use portcullis_testdns::{TestDns, Zones};

use super::{Client, TestServer, HOSTNAME, PASSWORD};

/// The domain whose mail passes everything: SPF lists 127.0.0.31 and .32, DKIM key at
/// `sel._domainkey`, DMARC p=reject; 127.0.0.31 has forward-confirmed reverse DNS.
pub const GOOD: &str = "sender.test";
pub const GOOD_IP: &str = "127.0.0.31";
/// In GOOD's SPF record too, but without reverse DNS.
pub const GOOD_IP2: &str = "127.0.0.32";
/// In nobody's SPF record: a spoofer.
pub const SPOOFER_IP: &str = "127.0.0.66";
/// SPF `-all` listing 127.0.0.31, and no DMARC record.
pub const NO_DMARC: &str = "nodmarc.test";
/// SPF `-all` listing 127.0.0.31, DMARC p=quarantine.
pub const QUARANTINE: &str = "quarantine.test";
/// A null MX (RFC 7505).
pub const NULL_MX: &str = "nullmx.test";
/// No records at all.
pub const NOWHERE: &str = "nowhere.test";
pub const SELECTOR: &str = "sel";

/// The test world: its DNS server and the DKIM key of [`GOOD`].
pub struct World {
    pub dns: TestDns,
    pub key: SigningKey,
}

impl World {
    pub fn start() -> World {
        let key = SigningKey::generate(Algorithm::Ed25519Sha256).unwrap();
        let dns = TestDns::start(zones(&key)).unwrap();
        World { dns, key }
    }

    pub fn addr(&self) -> SocketAddr {
        self.dns.addr()
    }

    /// A signer for [`GOOD`] with its published key.
    pub fn signer(&self) -> Signer {
        Signer::new(SigningKey::from_pem(&self.key.to_pem()).unwrap(), GOOD, SELECTOR)
    }
}

/// The records of the test domains, `key` published as GOOD's DKIM key.
pub fn zones(key: &SigningKey) -> Zones {
    let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
    Zones::new()
        .zone(GOOD)
        .mx(GOOD, 10, &format!("mx.{GOOD}"))
        .a(&format!("mx.{GOOD}"), ip(GOOD_IP))
        // RFC 7208 §2.3: the HELO name's own SPF record, what a bounce (null sender) is checked by.
        .txt(&format!("mx.{GOOD}"), &format!("v=spf1 ip4:{GOOD_IP} -all"))
        .txt(GOOD, &format!("v=spf1 ip4:{GOOD_IP} ip4:{GOOD_IP2} -all"))
        .txt(&format!("_dmarc.{GOOD}"), "v=DMARC1; p=reject")
        .txt(&SigningKey::dns_name(SELECTOR, GOOD), &key.dns_record())
        .ptr(IpAddr::V4(ip(GOOD_IP)), &format!("mx.{GOOD}"))
        .zone(NO_DMARC)
        .mx(NO_DMARC, 10, &format!("mx.{GOOD}"))
        .txt(NO_DMARC, &format!("v=spf1 ip4:{GOOD_IP} -all"))
        .zone(QUARANTINE)
        .mx(QUARANTINE, 10, &format!("mx.{GOOD}"))
        .txt(QUARANTINE, &format!("v=spf1 ip4:{GOOD_IP} -all"))
        .txt(&format!("_dmarc.{QUARANTINE}"), "v=DMARC1; p=quarantine")
        .zone(NULL_MX)
        .mx(NULL_MX, 0, ".")
}

/// A small message from `from`, with a Date and a Message-ID (as a real MTA sends it).
pub fn message(from: &str, to: &str, subject: &str) -> String {
    format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nDate: Mon, 07 Dec 2026 10:00:00 +0000\r\n\
         Message-ID: <{}@{}>\r\n\r\nHello from {from}.\r\n",
        subject.replace(' ', "-"),
        from.rsplit('@').next().unwrap_or("x")
    )
}

/// A port-25 connection from `source`, past the greeting.
pub fn connect(server: &TestServer, source: &str) -> Client {
    let mut c = server.connect_from(source, "smtp");
    let greeting = c.reply();
    assert!(greeting.starts_with("220 "), "greeting from {source}: {greeting}");
    c
}

/// EHLO, then STARTTLS and EHLO again when `tls`.
pub fn hello(server: &TestServer, mut c: Client, tls: bool) -> Client {
    assert!(c.cmd("EHLO mx.sender.test").starts_with("250"));
    if !tls {
        return c;
    }
    assert!(c.cmd("STARTTLS").starts_with("220"));
    let mut c = c.upgrade(server.client_config(rustls::ALL_VERSIONS));
    assert!(c.cmd("EHLO mx.sender.test").starts_with("250"));
    c
}

/// What a delivery got: the reply to MAIL FROM, or to the end of DATA.
pub fn deliver(server: &TestServer, source: &str, tls: bool, from: &str, to: &str, data: &[u8]) -> String {
    let mut c = hello(server, connect(server, source), tls);
    let reply = send(&mut c, from, to, data);
    c.cmd("QUIT");
    reply
}

/// One transaction on an open session: the first refusal, or the reply to the end of DATA.
pub fn send(c: &mut Client, from: &str, to: &str, data: &[u8]) -> String {
    let mail = c.cmd(&format!("MAIL FROM:<{from}>"));
    if !mail.starts_with("250") {
        return mail;
    }
    let rcpt = c.cmd(&format!("RCPT TO:<{to}>"));
    if !rcpt.starts_with("250") {
        c.cmd("RSET");
        return rcpt;
    }
    assert!(c.cmd("DATA").starts_with("354"));
    let mut body = data.to_vec();
    if !body.ends_with(b"\r\n") {
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b".\r\n");
    c.send_raw(&body);
    c.reply()
}

/// Every message in `user`'s `mailbox`, as IMAP serves it.
pub fn stored(server: &TestServer, user: &str, mailbox: &str) -> Vec<String> {
    let mut c = server.connect_tls("imaps");
    c.line();
    c.send(&format!("a LOGIN {user} {PASSWORD}"));
    until_tagged(&mut c, "a");
    c.send(&format!("b SELECT {mailbox}"));
    let (_, done) = until_tagged(&mut c, "b");
    assert!(done.starts_with("b OK"), "{done}");
    c.send("c FETCH 1:* (BODY.PEEK[])");
    let mut messages = Vec::new();
    loop {
        let line = c.line();
        if line.starts_with("c ") {
            break;
        }
        // "* 1 FETCH (BODY[] {123}"
        if let Some(size) = line.trim_end().strip_suffix('}').and_then(|l| l.rsplit_once('{')).map(|(_, n)| n) {
            let body = c.bytes(size.parse().unwrap());
            messages.push(String::from_utf8_lossy(&body).into_owned());
        }
    }
    c.send("d LOGOUT");
    messages
}

fn until_tagged(c: &mut Client, tag: &str) -> (Vec<String>, String) {
    let mut untagged = Vec::new();
    loop {
        let line = c.line();
        if line.starts_with(&format!("{tag} ")) || line.is_empty() {
            return (untagged, line);
        }
        untagged.push(line);
    }
}

/// The one `Authentication-Results` field of a stored message, unfolded.
pub fn authentication_results(message: &str) -> String {
    header(message, "Authentication-Results").unwrap_or_else(|| panic!("no Authentication-Results in {message}"))
}

/// The first field called `name` in the header of `message`, unfolded.
pub fn header(message: &str, name: &str) -> Option<String> {
    headers(message, name).into_iter().next()
}

/// Every field called `name` in the header of `message`, in order, each unfolded.
pub fn headers(message: &str, name: &str) -> Vec<String> {
    let head = message.split("\r\n\r\n").next().unwrap_or("");
    let mut found = Vec::new();
    let mut current: Option<String> = None;
    for line in head.split("\r\n") {
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some(value) = current.as_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        found.extend(current.take());
        if let Some((field, value)) = line.split_once(':') {
            if field.eq_ignore_ascii_case(name) {
                current = Some(value.trim().to_string());
            }
        }
    }
    found.extend(current);
    found
}

/// The hostname, which is our authserv-id.
pub const AUTHSERV_ID: &str = HOSTNAME;
