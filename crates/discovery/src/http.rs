//! The HTTP surface the HTTPS listener calls: one function from (Host header, method, target,
//! body, whether the connection is TLS) to a response (status, content type, body), so that
//! the listener stays a thin loop of hyper or axum around [`Site::respond`].
//!
//! Routes (every document only for a local domain, anything else 404):
//! - `GET /mail/config-v1.1.xml` on `autoconfig.DOMAIN`, and
//!   `GET /.well-known/autoconfig/mail/config-v1.1.xml` on DOMAIN (or any accepted host, with
//!   `?emailaddress=`): Thunderbird's autoconfig.
//! - `POST /autodiscover/autodiscover.xml` (any case, any accepted host): Microsoft's POX
//!   autodiscover; the body is at most [`MAX_BODY`] bytes.
//! - `GET /mail.mobileconfig?emailaddress=ADDRESS`: the Apple profile for the address.
//! - `GET /.well-known/mta-sts.txt` on `mta-sts.DOMAIN`: the MTA-STS policy (RFC 8461 §3.3),
//!   once port 25 and this listener both exist.
//! - `GET /.well-known/acme-challenge/TOKEN`: the ACME HTTP-01 answer (RFC 8555 §8.3), on any
//!   host, also without TLS; it is the only route served without TLS, so no document is ever
//!   sent where it could be altered on the way.
//!
//! Whether an address's account exists is never asked: every address of a local domain gets
//! the same document, so the route tells nobody which accounts exist.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use portcullis_config::{normalize_address, normalize_domain};

use crate::facts::ServerFacts;
use crate::{autoconfig, autodiscover, mobileconfig};

/// The largest request body read (an autodiscover request is a few hundred bytes).
pub const MAX_BODY: usize = 16 * 1024;

/// One request, as the listener read it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The Host header (or HTTP/2 `:authority`), port included or not.
    pub host: Option<&'a str>,
    pub method: &'a str,
    /// The request target: path and query (`/mail/config-v1.1.xml?emailaddress=…`).
    pub target: &'a str,
    /// At most [`MAX_BODY`] bytes; the listener answers 413 itself beyond that, or passes
    /// what it read and lets [`Site::respond`] say 413.
    pub body: &'a [u8],
    /// Whether the connection is TLS (the HTTPS listener) or plain HTTP (port 80, for ACME).
    pub tls: bool,
}

/// What to send back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    /// Headers beyond Content-Type (Allow, Content-Disposition, Cache-Control).
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// The domains this server receives mail for; the store owns the list, the listener hands a
/// current copy (or a view) in.
pub trait LocalDomains {
    /// `domain` is lower case, without a final dot.
    fn is_local(&self, domain: &str) -> bool;
}

impl LocalDomains for [String] {
    fn is_local(&self, domain: &str) -> bool {
        self.iter().any(|d| d == domain)
    }
}

impl LocalDomains for Vec<String> {
    fn is_local(&self, domain: &str) -> bool {
        self.as_slice().is_local(domain)
    }
}

impl LocalDomains for HashSet<String> {
    fn is_local(&self, domain: &str) -> bool {
        self.contains(domain)
    }
}

impl LocalDomains for BTreeSet<String> {
    fn is_local(&self, domain: &str) -> bool {
        self.contains(domain)
    }
}

/// The key authorization for an HTTP-01 token, if one is pending (crates/acme's
/// `Challenges::http01`).
pub type Http01Answers = dyn Fn(&str) -> Option<String> + Send + Sync;

/// The documents of one server.
#[derive(Clone)]
pub struct Site {
    server: ServerFacts,
    http01: Option<Arc<Http01Answers>>,
}

/// The host prefixes clients use to reach the documents of DOMAIN.
const PREFIXES: [&str; 3] = ["autoconfig.", "autodiscover.", "mta-sts."];

impl Site {
    pub fn new(server: ServerFacts) -> Site {
        Site { server, http01: None }
    }

    /// Serves ACME HTTP-01 answers from `answers`.
    pub fn with_http01(mut self, answers: Arc<Http01Answers>) -> Site {
        self.http01 = Some(answers);
        self
    }

    pub fn server(&self) -> &ServerFacts {
        &self.server
    }

    pub fn respond(&self, request: &Request<'_>, domains: &dyn LocalDomains) -> Response {
        let (path, query) = request.target.split_once('?').unwrap_or((request.target, ""));
        if let Some(token) = path.strip_prefix("/.well-known/acme-challenge/") {
            return self.acme_challenge(request, token);
        }
        if !request.tls {
            return not_found();
        }
        // Which local domain the host names (None: the server's own name, which serves every
        // local domain when the request names an address).
        let Some(host) = request.host.and_then(host_name) else { return not_found() };
        let host_domain = if host == self.server.hostname {
            None
        } else {
            let bare = PREFIXES.iter().find_map(|p| host.strip_prefix(p)).unwrap_or(&host);
            if domains.is_local(bare) {
                Some(bare.to_string())
            } else if domains.is_local(&host) {
                Some(host.clone())
            } else {
                return not_found();
            }
        };
        let address = query_param(query, "emailaddress").and_then(|a| normalize_address(&a));
        let lower = path.to_ascii_lowercase();
        match lower.as_str() {
            "/mail/config-v1.1.xml" | "/.well-known/autoconfig/mail/config-v1.1.xml" => {
                if let Some(refused) = only(request, "GET") {
                    return refused;
                }
                let domain = match &address {
                    Some(a) => a.rsplit_once('@').map(|(_, d)| d.to_string()),
                    None => host_domain,
                };
                match domain.filter(|d| domains.is_local(d)) {
                    Some(d) => document(autoconfig::document(&self.server, &d), autoconfig::CONTENT_TYPE),
                    None => not_found(),
                }
            }
            "/autodiscover/autodiscover.xml" => self.autodiscover(request, domains),
            "/mail.mobileconfig" => {
                if let Some(refused) = only(request, "GET") {
                    return refused;
                }
                match address.filter(|a| in_local_domain(a, domains)) {
                    Some(a) => {
                        let mut response =
                            document(mobileconfig::profile(&self.server, &a), mobileconfig::CONTENT_TYPE);
                        let file = a.rsplit_once('@').map_or("mail", |(_, d)| d).to_string();
                        response
                            .headers
                            .push(("Content-Disposition", format!("attachment; filename=\"{file}.mobileconfig\"")));
                        response
                    }
                    None => not_found(),
                }
            }
            "/.well-known/mta-sts.txt" => {
                if let Some(refused) = only(request, "GET") {
                    return refused;
                }
                // RFC 8461 §3.3: the policy host is mta-sts.DOMAIN, nothing else.
                let on_policy_host = host_domain.as_ref().is_some_and(|d| host == format!("mta-sts.{d}"));
                match self.server.mta_sts_policy() {
                    Some(policy) if on_policy_host => ok("text/plain; charset=utf-8", policy.text().into_bytes()),
                    _ => not_found(),
                }
            }
            _ => not_found(),
        }
    }

    fn acme_challenge(&self, request: &Request<'_>, token: &str) -> Response {
        if let Some(refused) = only(request, "GET") {
            return refused;
        }
        // RFC 8555 §8.1: a token is base64url; anything else is not one of ours.
        let well_formed =
            !token.is_empty() && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        match self.http01.as_ref().filter(|_| well_formed).and_then(|answers| answers(token)) {
            Some(key_authorization) => ok("application/octet-stream", key_authorization.into_bytes()),
            None => not_found(),
        }
    }

    fn autodiscover(&self, request: &Request<'_>, domains: &dyn LocalDomains) -> Response {
        if let Some(refused) = only(request, "POST") {
            return refused;
        }
        if request.body.len() > MAX_BODY {
            return plain(413, "the request body is too large\n");
        }
        let xml = match autodiscover::parse_request(request.body) {
            Err(_) => autodiscover::error(autodiscover::ErrorCode::InvalidRequest),
            Ok(asked) if asked.acceptable_response_schema != autodiscover::RESPONSE_SCHEMA => {
                autodiscover::error(autodiscover::ErrorCode::SchemaNotSupported)
            }
            Ok(asked) => match normalize_address(&asked.email_address).filter(|a| in_local_domain(a, domains)) {
                Some(address) => match autodiscover::settings(&self.server, &address) {
                    Some(xml) => xml,
                    None => return not_found(),
                },
                None => return not_found(),
            },
        };
        ok(autodiscover::CONTENT_TYPE, xml.into_bytes())
    }
}

/// `None` when the method is `method`; a 405 naming it otherwise.
fn only(request: &Request<'_>, method: &str) -> Option<Response> {
    if request.method == method {
        return None;
    }
    let mut response = plain(405, "method not allowed\n");
    response.headers.push(("Allow", method.to_string()));
    Some(response)
}

fn in_local_domain(address: &str, domains: &dyn LocalDomains) -> bool {
    address.rsplit_once('@').is_some_and(|(_, d)| domains.is_local(d))
}

/// The host of a Host header: the port and a final dot dropped, lower case, and only if it
/// is a host name (an address literal serves nothing).
fn host_name(header: &str) -> Option<String> {
    let host = match header.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => header,
    };
    normalize_domain(host)
}

/// One query parameter, percent-decoded (RFC 3986 §2.1; `+` is a space in form encoding).
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| percent_decode(value)).flatten()
    })
}

/// RFC 3986 §2.1 percent-decoding of a query value (and `+` as a space, as HTML forms send
/// it); `None` for a malformed escape or bytes that are not UTF-8. Public because the admin
/// API's query strings are decoded the same way, and one decoder keeps them from drifting.
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn document(body: Option<String>, content_type: &'static str) -> Response {
    match body {
        Some(body) => ok(content_type, body.into_bytes()),
        None => not_found(),
    }
}

fn ok(content_type: &'static str, body: Vec<u8>) -> Response {
    // Documents change when the config does; clients fetch them rarely and should not cache.
    Response { status: 200, content_type, headers: vec![("Cache-Control", "no-store".into())], body }
}

fn plain(status: u16, text: &str) -> Response {
    Response { status, content_type: "text/plain; charset=utf-8", headers: Vec::new(), body: text.as_bytes().to_vec() }
}

fn not_found() -> Response {
    plain(404, "not found\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Ports;

    fn site() -> Site {
        let ports = Ports {
            submissions: Some(465),
            submission: Some(587),
            imaps: Some(993),
            pop3s: Some(995),
            smtp: Some(25),
            https: Some(443),
        };
        let answers: Arc<Http01Answers> =
            Arc::new(|token: &str| (token == "tok-1").then(|| "tok-1.thumbprint".to_string()));
        Site::new(ServerFacts::new("mail.example.org", ports)).with_http01(answers)
    }

    fn domains() -> Vec<String> {
        vec!["example.org".into()]
    }

    fn get(host: &str, target: &str) -> Response {
        let request = Request { host: Some(host), method: "GET", target, body: b"", tls: true };
        site().respond(&request, &domains())
    }

    fn text(response: &Response) -> String {
        String::from_utf8(response.body.clone()).unwrap()
    }

    #[test]
    fn autoconfig_is_served_on_both_thunderbird_urls_for_local_domains_only() {
        let a = get("autoconfig.example.org", "/mail/config-v1.1.xml?emailaddress=alice%40example.org");
        assert_eq!((a.status, a.content_type), (200, autoconfig::CONTENT_TYPE));
        assert!(text(&a).contains("<domain>example.org</domain>"));
        let b = get("Example.ORG:443", "/.well-known/autoconfig/mail/config-v1.1.xml");
        assert_eq!(b.body, a.body);
        assert_eq!(get("autoconfig.other.net", "/mail/config-v1.1.xml").status, 404);
        assert_eq!(get("mail.example.org", "/mail/config-v1.1.xml?emailaddress=a@other.net").status, 404);
        assert_eq!(get("mail.example.org", "/mail/config-v1.1.xml?emailaddress=a@example.org").status, 200);
        assert_eq!(get("mail.example.org", "/mail/config-v1.1.xml").status, 404);
        assert_eq!(get("192.0.2.1", "/mail/config-v1.1.xml").status, 404);
    }

    #[test]
    fn autodiscover_answers_posts_for_local_addresses() {
        let body = format!(
            "<Autodiscover xmlns=\"{}\"><Request><EMailAddress>Alice@Example.org</EMailAddress>\
             <AcceptableResponseSchema>{}</AcceptableResponseSchema></Request></Autodiscover>",
            autodiscover::REQUEST_SCHEMA,
            autodiscover::RESPONSE_SCHEMA
        );
        let post = |host: &str, body: &[u8]| {
            let r =
                Request { host: Some(host), method: "POST", target: "/Autodiscover/Autodiscover.xml", body, tls: true };
            site().respond(&r, &domains())
        };
        let ok = post("autodiscover.example.org", body.as_bytes());
        assert_eq!(ok.status, 200);
        assert!(text(&ok).contains("<LoginName>alice@example.org</LoginName>"), "{}", text(&ok));
        assert_eq!(post("autodiscover.example.org", body.replace("Example.org<", "other.net<").as_bytes()).status, 404);
        let garbage = post("example.org", b"<nope");
        assert_eq!(garbage.status, 200);
        assert!(text(&garbage).contains("<ErrorCode>600</ErrorCode>"));
        let mobile = body.replace("outlook/responseschema/2006a", "mobilesync/responseschema/2006");
        assert!(text(&post("example.org", mobile.as_bytes())).contains("<ErrorCode>601</ErrorCode>"));
        assert_eq!(post("example.org", &vec![b'x'; MAX_BODY + 1]).status, 413);
        let get = get("example.org", "/autodiscover/autodiscover.xml");
        assert_eq!(get.status, 405);
        assert_eq!(get.headers, vec![("Allow", "POST".to_string())]);
    }

    #[test]
    fn the_profile_is_for_a_local_address_and_downloads_as_a_file() {
        let r = get("mail.example.org", "/mail.mobileconfig?emailaddress=bob%2Btag%40example.org");
        assert_eq!((r.status, r.content_type), (200, mobileconfig::CONTENT_TYPE));
        assert!(text(&r).contains("<string>bob+tag@example.org</string>"));
        assert!(r
            .headers
            .contains(&("Content-Disposition", "attachment; filename=\"example.org.mobileconfig\"".into())));
        assert_eq!(get("mail.example.org", "/mail.mobileconfig?emailaddress=bob@other.net").status, 404);
        assert_eq!(get("mail.example.org", "/mail.mobileconfig?emailaddress=%ZZ").status, 404);
        assert_eq!(get("mail.example.org", "/mail.mobileconfig").status, 404);
    }

    #[test]
    fn the_mta_sts_policy_is_served_on_its_host_only() {
        let r = get("mta-sts.example.org", "/.well-known/mta-sts.txt");
        assert_eq!((r.status, r.content_type), (200, "text/plain; charset=utf-8"));
        assert!(text(&r).starts_with("version: STSv1\r\nmode: enforce\r\nmx: mail.example.org\r\n"));
        assert_eq!(get("example.org", "/.well-known/mta-sts.txt").status, 404);
        assert_eq!(get("mta-sts.other.net", "/.well-known/mta-sts.txt").status, 404);
        let mut no_mx = site();
        no_mx.server.ports.smtp = None;
        let request = Request {
            host: Some("mta-sts.example.org"),
            method: "GET",
            target: "/.well-known/mta-sts.txt",
            body: b"",
            tls: true,
        };
        assert_eq!(no_mx.respond(&request, &domains()).status, 404);
    }

    #[test]
    fn without_tls_only_acme_challenges_are_answered() {
        let plain = |target: &str| {
            let r = Request { host: Some("autoconfig.example.org"), method: "GET", target, body: b"", tls: false };
            site().respond(&r, &domains())
        };
        let challenge = plain("/.well-known/acme-challenge/tok-1");
        assert_eq!((challenge.status, text(&challenge).as_str()), (200, "tok-1.thumbprint"));
        assert_eq!(plain("/.well-known/acme-challenge/tok-2").status, 404);
        assert_eq!(plain("/.well-known/acme-challenge/../etc").status, 404);
        assert_eq!(plain("/mail/config-v1.1.xml").status, 404);
        assert_eq!(get("anything.invalid", "/.well-known/acme-challenge/tok-1").status, 200);
    }

    #[test]
    fn query_parameters_are_percent_decoded_and_bad_encodings_refused() {
        assert_eq!(query_param("a=1&emailaddress=x%40y.org", "emailaddress").as_deref(), Some("x@y.org"));
        assert_eq!(query_param("emailaddress=%4", "emailaddress"), None);
        assert_eq!(query_param("emailaddress=%ff", "emailaddress"), None);
        assert_eq!(query_param("other=1", "emailaddress"), None);
    }
}
