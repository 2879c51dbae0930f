//! Microsoft's "plain old XML" autodiscover (what Outlook and many other clients POST to
//! `https://DOMAIN/autodiscover/autodiscover.xml` or `https://autodiscover.DOMAIN/…`): the
//! request names an address and the response schema it accepts; the response lists IMAP and
//! POP3 over implicit TLS and SMTP submission on 465 (`SSL`) and 587 (`Encryption` `TLS`,
//! i.e. STARTTLS), never a plaintext port. The login name is the address itself.
//!
//! The request is parsed with quick-xml: no DTD is accepted (no entity can expand), only the
//! five predefined entities and character references are read, depth and text are bounded,
//! and the body's size is bounded by the HTTP layer before it gets here.

use quick_xml::events::Event;
use quick_xml::{Reader, XmlVersion};

use crate::facts::ServerFacts;
use crate::xml::escape;

/// The request schema Outlook sends.
pub const REQUEST_SCHEMA: &str = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006";
/// The one response schema served (Outlook's "2006a"); mobile-sync (ActiveSync) is not.
pub const RESPONSE_SCHEMA: &str = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a";
/// The namespace of the response's root element.
pub const ROOT_SCHEMA: &str = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006";
pub const CONTENT_TYPE: &str = "text/xml; charset=utf-8";

/// Nesting deeper than this is not an autodiscover request.
const MAX_DEPTH: usize = 8;
/// Longer than any address (RFC 5321 §4.5.3.1.3 path limit) or schema URI.
const MAX_TEXT: usize = 512;

/// What a request asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub email_address: String,
    pub acceptable_response_schema: String,
}

/// Why a request was not understood; answered with error code 600 ("Invalid Request").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError(pub String);

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not an autodiscover request: {}", self.0)
    }
}

/// Reads `<Autodiscover><Request><EMailAddress>…</EMailAddress>
/// <AcceptableResponseSchema>…</AcceptableResponseSchema></Request></Autodiscover>`, namespace
/// prefixes ignored (clients differ in how they write them).
pub fn parse_request(body: &[u8]) -> Result<Request, RequestError> {
    let bad = |why: String| RequestError(why);
    // Clients send UTF-8 (the declaration says so); anything else is not read at all.
    let body = std::str::from_utf8(body).map_err(|_| bad("the body is not UTF-8".into()))?;
    let mut reader = Reader::from_str(body);
    reader.config_mut().trim_text(true);
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let (mut email, mut schema) = (None, None);
    loop {
        let event = reader.read_event().map_err(|e| bad(e.to_string()))?;
        match event {
            Event::Start(start) => {
                let name = start.local_name().as_ref().to_string();
                if path.is_empty() && name != "Autodiscover" {
                    return Err(bad(format!("the root element is {name:?}, not Autodiscover")));
                }
                path.push(name);
                if path.len() > MAX_DEPTH {
                    return Err(bad("nested too deeply".into()));
                }
                text.clear();
            }
            Event::Empty(_) => text.clear(),
            Event::Text(t) => push_text(&mut text, &t.xml_content(XmlVersion::Implicit1_0))?,
            Event::CData(t) => push_text(&mut text, &t.into_inner())?,
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref().map_err(|e| bad(e.to_string()))? {
                    Some(c) => c,
                    None => predefined(&r.into_inner())
                        .ok_or_else(|| bad("an entity other than the five XML predefines".into()))?,
                };
                push_text(&mut text, c.encode_utf8(&mut [0; 4]))?;
            }
            Event::End(_) => {
                let inside: Vec<&str> = path.iter().map(String::as_str).collect();
                match inside.as_slice() {
                    ["Autodiscover", "Request", "EMailAddress"] => email = Some(text.trim().to_string()),
                    ["Autodiscover", "Request", "AcceptableResponseSchema"] => schema = Some(text.trim().to_string()),
                    _ => {}
                }
                path.pop();
                text.clear();
            }
            Event::DocType(_) => return Err(bad("a document type declaration".into())),
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
    }
    if !path.is_empty() {
        return Err(bad("the document ends inside an element".into()));
    }
    Ok(Request {
        email_address: email.ok_or_else(|| bad("no EMailAddress".into()))?,
        acceptable_response_schema: schema.ok_or_else(|| bad("no AcceptableResponseSchema".into()))?,
    })
}

fn push_text(text: &mut String, more: &str) -> Result<(), RequestError> {
    if text.len() + more.len() > MAX_TEXT {
        return Err(RequestError("an element's text is too long".into()));
    }
    text.push_str(more);
    Ok(())
}

/// XML 1.0 §4.6.
fn predefined(name: &str) -> Option<char> {
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        _ => return None,
    })
}

/// The settings for `address` (already checked to be in a local domain), or `None` when the
/// server offers no way in or no way out.
pub fn settings(server: &ServerFacts, address: &str) -> Option<String> {
    if !server.offers_client_access() {
        return None;
    }
    let host = escape(&server.hostname);
    let login = escape(address);
    let p = &server.ports;
    let mut xml = response_start();
    xml.push_str(&format!("  <Response xmlns=\"{RESPONSE_SCHEMA}\">\n"));
    xml.push_str("    <Account>\n      <AccountType>email</AccountType>\n      <Action>settings</Action>\n");
    let protocols = [
        ("IMAP", p.imaps, Tls::Implicit),
        ("POP3", p.pop3s, Tls::Implicit),
        ("SMTP", p.submissions, Tls::Implicit),
        ("SMTP", p.submission, Tls::StartTls),
    ];
    for (kind, port, tls) in protocols.iter().filter_map(|(k, p, t)| p.map(|p| (*k, p, *t))) {
        xml.push_str("      <Protocol>\n");
        xml.push_str(&format!("        <Type>{kind}</Type>\n"));
        xml.push_str(&format!("        <Server>{host}</Server>\n"));
        xml.push_str(&format!("        <Port>{port}</Port>\n"));
        xml.push_str(&format!("        <LoginName>{login}</LoginName>\n"));
        xml.push_str("        <DomainRequired>off</DomainRequired>\n");
        xml.push_str("        <SPA>off</SPA>\n");
        match tls {
            Tls::Implicit => xml.push_str("        <SSL>on</SSL>\n"),
            // "TLS" is STARTTLS in this schema; SSL is then ignored, but said for old clients.
            Tls::StartTls => xml.push_str("        <SSL>on</SSL>\n        <Encryption>TLS</Encryption>\n"),
        }
        xml.push_str("        <AuthRequired>on</AuthRequired>\n");
        xml.push_str("      </Protocol>\n");
    }
    xml.push_str("    </Account>\n  </Response>\n</Autodiscover>\n");
    Some(xml)
}

#[derive(Clone, Copy)]
enum Tls {
    Implicit,
    StartTls,
}

/// Autodiscover error codes (Microsoft's POX reference).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 600: the request could not be read.
    InvalidRequest,
    /// 601: the response schema asked for is not one this server provides.
    SchemaNotSupported,
}

/// An error response (HTTP 200, as the format wants).
pub fn error(code: ErrorCode) -> String {
    let (number, message) = match code {
        ErrorCode::InvalidRequest => (600, "Invalid Request"),
        ErrorCode::SchemaNotSupported => (601, "Provider is not available"),
    };
    let mut xml = response_start();
    xml.push_str("  <Response>\n    <Error>\n");
    xml.push_str(&format!("      <ErrorCode>{number}</ErrorCode>\n      <Message>{message}</Message>\n"));
    xml.push_str("      <DebugData />\n    </Error>\n  </Response>\n</Autodiscover>\n");
    xml
}

fn response_start() -> String {
    format!("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Autodiscover xmlns=\"{ROOT_SCHEMA}\">\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Ports;

    fn request(email: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Autodiscover xmlns=\"{REQUEST_SCHEMA}\"><Request>\
             <EMailAddress>{email}</EMailAddress>\
             <AcceptableResponseSchema>{RESPONSE_SCHEMA}</AcceptableResponseSchema></Request></Autodiscover>"
        )
    }

    #[test]
    fn outlooks_request_is_read() {
        let parsed = parse_request(request("alice@example.org").as_bytes()).unwrap();
        assert_eq!(parsed.email_address, "alice@example.org");
        assert_eq!(parsed.acceptable_response_schema, RESPONSE_SCHEMA);
    }

    #[test]
    fn prefixes_entities_and_character_references_are_understood() {
        let body = format!(
            "<a:Autodiscover xmlns:a=\"{REQUEST_SCHEMA}\"><a:Request><a:EMailAddress>o&apos;brien&#64;example.org\
             </a:EMailAddress><a:AcceptableResponseSchema>{RESPONSE_SCHEMA}</a:AcceptableResponseSchema>\
             </a:Request></a:Autodiscover>"
        );
        assert_eq!(parse_request(body.as_bytes()).unwrap().email_address, "o'brien@example.org");
    }

    #[test]
    fn hostile_or_broken_requests_are_refused_not_panicked_on() {
        let doctype = "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><Autodiscover><Request>\
                       <EMailAddress>&e;</EMailAddress></Request></Autodiscover>";
        let deep = format!("<Autodiscover>{}", "<x>".repeat(50));
        let long = request(&"a".repeat(600));
        for body in [
            doctype,
            "<Other/>",
            "<Autodiscover><Request>",
            "<Autodiscover><Request><EMailAddress>&unknown;</EMailAddress></Request></Autodiscover>",
            "",
            "\u{0}\u{1}garbage",
            &deep,
            &long,
            "<Autodiscover><Request><EMailAddress>a@b</EMailAddress></Request></Autodiscover>",
        ] {
            assert!(parse_request(body.as_bytes()).is_err(), "{body:?}");
        }
        assert!(parse_request(&[0xff, 0xfe, 0x00]).is_err());
    }

    #[test]
    fn settings_list_tls_ports_only_with_starttls_as_encryption_tls() {
        let ports = Ports {
            submissions: Some(465),
            submission: Some(587),
            imaps: Some(993),
            pop3s: Some(995),
            smtp: Some(25),
            https: Some(443),
        };
        let xml = settings(&ServerFacts::new("mail.example.org", ports), "a&b@example.org").unwrap();
        assert_eq!(xml.matches("<Protocol>").count(), 4);
        assert!(xml.contains("<Port>587</Port>\n        <LoginName>a&amp;b@example.org</LoginName>"), "{xml}");
        assert_eq!(xml.matches("<Encryption>TLS</Encryption>").count(), 1);
        assert!(!xml.contains("<Port>25<") && !xml.contains("<SSL>off"), "{xml}");
    }
}
