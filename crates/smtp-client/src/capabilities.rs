//! What a server says it can do, read from its EHLO reply (RFC 5321 §4.1.1.1: the first line
//! names the server, each further line is one extension keyword with its parameters). Only
//! the extensions the client uses are kept; keywords are case-insensitive.

use crate::reply::Reply;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// The server spoke ESMTP (answered EHLO); false after a fallback to HELO.
    pub esmtp: bool,
    /// RFC 1870: the largest message accepted; `Some(0)` means "no fixed limit".
    pub size: Option<u64>,
    /// RFC 2920.
    pub pipelining: bool,
    /// RFC 6152.
    pub eight_bit_mime: bool,
    /// RFC 6531.
    pub smtputf8: bool,
    /// RFC 3207.
    pub starttls: bool,
    /// RFC 3030 (BDAT).
    pub chunking: bool,
    /// RFC 8689.
    pub requiretls: bool,
    /// RFC 3461.
    pub dsn: bool,
    /// RFC 2034.
    pub enhanced_status_codes: bool,
    /// RFC 4954: the SASL mechanisms offered, upper case.
    pub auth: Vec<String>,
}

impl Capabilities {
    /// Reads a 250 reply to EHLO.
    pub fn from_ehlo(reply: &Reply) -> Capabilities {
        let mut caps = Capabilities { esmtp: true, ..Capabilities::default() };
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let Some(keyword) = words.next() else { continue };
            // Some old servers announce "AUTH=LOGIN PLAIN" (pre-RFC 4954 syntax).
            let (keyword, first_param) = match keyword.split_once('=') {
                Some((k, p)) => (k, Some(p)),
                None => (keyword, None),
            };
            let params: Vec<&str> = first_param.into_iter().chain(words).filter(|p| !p.is_empty()).collect();
            match keyword.to_ascii_uppercase().as_str() {
                "SIZE" => caps.size = Some(params.first().and_then(|p| p.parse().ok()).unwrap_or(0)),
                "PIPELINING" => caps.pipelining = true,
                "8BITMIME" => caps.eight_bit_mime = true,
                "SMTPUTF8" => caps.smtputf8 = true,
                "STARTTLS" => caps.starttls = true,
                "CHUNKING" => caps.chunking = true,
                "REQUIRETLS" => caps.requiretls = true,
                "DSN" => caps.dsn = true,
                "ENHANCEDSTATUSCODES" => caps.enhanced_status_codes = true,
                "AUTH" => {
                    for mechanism in params {
                        let mechanism = mechanism.to_ascii_uppercase();
                        if !caps.auth.contains(&mechanism) {
                            caps.auth.push(mechanism);
                        }
                    }
                }
                _ => {}
            }
        }
        caps
    }

    /// Whether the server offers this SASL mechanism.
    pub fn offers_auth(&self, mechanism: &str) -> bool {
        self.auth.iter().any(|m| m.eq_ignore_ascii_case(mechanism))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ehlo(lines: &[&str]) -> Reply {
        Reply { code: 250, enhanced: None, lines: lines.iter().map(|s| s.to_string()).collect() }
    }

    #[test]
    fn every_extension_used_is_read() {
        let caps = Capabilities::from_ehlo(&ehlo(&[
            "mx.example.org Hello",
            "SIZE 10240000",
            "pipelining",
            "8BITMIME",
            "SMTPUTF8",
            "STARTTLS",
            "CHUNKING",
            "REQUIRETLS",
            "DSN",
            "ENHANCEDSTATUSCODES",
            "AUTH PLAIN LOGIN",
            "AUTH=LOGIN CRAM-MD5",
            "X-UNKNOWN foo",
        ]));
        assert_eq!(caps.size, Some(10_240_000));
        assert!(caps.pipelining && caps.eight_bit_mime && caps.smtputf8 && caps.starttls);
        assert!(caps.chunking && caps.requiretls && caps.dsn && caps.enhanced_status_codes && caps.esmtp);
        assert_eq!(caps.auth, ["PLAIN", "LOGIN", "CRAM-MD5"]);
        assert!(caps.offers_auth("plain"));
    }

    #[test]
    fn the_greeting_line_is_not_an_extension_and_size_without_a_number_is_no_limit() {
        let caps = Capabilities::from_ehlo(&ehlo(&["STARTTLS", "SIZE"]));
        assert!(!caps.starttls, "the first line is the server's name");
        assert_eq!(caps.size, Some(0));
    }
}
