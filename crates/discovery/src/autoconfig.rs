//! Thunderbird's autoconfig document (Mozilla's "config-v1.1.xml" format), served at
//! `https://autoconfig.DOMAIN/mail/config-v1.1.xml` and
//! `https://DOMAIN/.well-known/autoconfig/mail/config-v1.1.xml`. It lists only TLS ports:
//! IMAP and POP3 over implicit TLS (`SSL`), submission on 465 (`SSL`) and 587 (`STARTTLS`,
//! which Portcullis requires before AUTH), never a plaintext port, so a client configured
//! from it cannot fall back to one. The user name is `%EMAILADDRESS%`, which the client fills
//! in: the document names no account and is the same for every address of the domain.

use crate::facts::ServerFacts;
use crate::xml::escape;

/// The content type Thunderbird expects (it also accepts `application/xml`).
pub const CONTENT_TYPE: &str = "text/xml; charset=utf-8";

/// How a client protects a connection, in the format's words.
#[derive(Clone, Copy)]
enum Socket {
    Ssl,
    StartTls,
}

impl Socket {
    fn name(self) -> &'static str {
        match self {
            Socket::Ssl => "SSL",
            Socket::StartTls => "STARTTLS",
        }
    }
}

/// The document for `domain`, or `None` when the server offers no way in or no way out.
pub fn document(server: &ServerFacts, domain: &str) -> Option<String> {
    if !server.offers_client_access() {
        return None;
    }
    let host = escape(&server.hostname);
    let domain = escape(domain);
    let p = &server.ports;
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<clientConfig version=\"1.1\">\n");
    xml.push_str(&format!("  <emailProvider id=\"{domain}\">\n"));
    xml.push_str(&format!("    <domain>{domain}</domain>\n"));
    xml.push_str(&format!("    <displayName>{domain}</displayName>\n"));
    xml.push_str(&format!("    <displayShortName>{domain}</displayShortName>\n"));
    // IMAP first: clients take the first incoming server as the default.
    let incoming = [("imap", p.imaps), ("pop3", p.pop3s)];
    for (kind, port) in incoming.iter().filter_map(|(k, p)| p.map(|p| (*k, p))) {
        server_element(&mut xml, "incomingServer", kind, &host, port, Socket::Ssl);
    }
    let outgoing = [(p.submissions, Socket::Ssl), (p.submission, Socket::StartTls)];
    for (port, socket) in outgoing.iter().filter_map(|(p, s)| p.map(|p| (p, *s))) {
        server_element(&mut xml, "outgoingServer", "smtp", &host, port, socket);
    }
    xml.push_str("  </emailProvider>\n</clientConfig>\n");
    Some(xml)
}

fn server_element(xml: &mut String, element: &str, kind: &str, host: &str, port: u16, socket: Socket) {
    xml.push_str(&format!("    <{element} type=\"{kind}\">\n"));
    xml.push_str(&format!("      <hostname>{host}</hostname>\n"));
    xml.push_str(&format!("      <port>{port}</port>\n"));
    xml.push_str(&format!("      <socketType>{}</socketType>\n", socket.name()));
    // The password goes only inside TLS: every port listed here is TLS before AUTH.
    xml.push_str("      <authentication>password-cleartext</authentication>\n");
    xml.push_str("      <username>%EMAILADDRESS%</username>\n");
    xml.push_str(&format!("    </{element}>\n"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Ports;

    fn facts(ports: Ports) -> ServerFacts {
        ServerFacts::new("mail.example.org", ports)
    }

    fn all() -> Ports {
        Ports {
            submissions: Some(465),
            submission: Some(587),
            imaps: Some(993),
            pop3s: Some(995),
            smtp: Some(25),
            https: Some(443),
        }
    }

    #[test]
    fn every_tls_port_is_listed_with_its_mode_and_no_plaintext_one() {
        let xml = document(&facts(all()), "example.org").unwrap();
        for needle in [
            "<incomingServer type=\"imap\">\n      <hostname>mail.example.org</hostname>\n      <port>993</port>\n      <socketType>SSL</socketType>",
            "<incomingServer type=\"pop3\">\n      <hostname>mail.example.org</hostname>\n      <port>995</port>\n      <socketType>SSL</socketType>",
            "<port>465</port>\n      <socketType>SSL</socketType>",
            "<port>587</port>\n      <socketType>STARTTLS</socketType>",
        ] {
            assert!(xml.contains(needle), "{needle} missing from\n{xml}");
        }
        assert!(!xml.contains("plain") && !xml.contains(">25<") && !xml.contains(">143<"), "{xml}");
        assert!(xml.find("type=\"imap\"").unwrap() < xml.find("type=\"pop3\"").unwrap());
    }

    #[test]
    fn listeners_that_are_off_are_left_out() {
        let ports = Ports { pop3s: None, submission: None, ..all() };
        let xml = document(&facts(ports), "example.org").unwrap();
        assert!(!xml.contains("pop3") && !xml.contains("STARTTLS"), "{xml}");
    }

    #[test]
    fn no_document_without_a_way_in_and_a_way_out() {
        assert!(document(&facts(Ports { imaps: None, pop3s: None, ..all() }), "example.org").is_none());
        assert!(document(&facts(Ports { submissions: None, submission: None, ..all() }), "example.org").is_none());
    }

    #[test]
    fn the_domain_is_escaped() {
        let xml = document(&facts(all()), "a\"><x>.org").unwrap();
        assert!(xml.contains("id=\"a&quot;&gt;&lt;x&gt;.org\""), "{xml}");
        assert!(!xml.contains("<x>"));
    }
}
