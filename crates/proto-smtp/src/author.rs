//! The author fields of a submitted message bound to the account (RFC 5322 §3.6.2): every
//! mailbox in every From: field, and in Sender: when there is one, must be the account's own
//! address or one of its aliases, so that a logged-in account cannot sign its mail with
//! somebody else's name. The fields are read by mail-parser (header section only), not by hand:
//! display names, comments, groups and encoded words are its business. A message without
//! From: claims nobody and is left to the receiving side.

use mail_parser::{HeaderName, HeaderValue, MessageParser};

use crate::Principal;

/// What is wrong with the message's author fields, if anything: the field and the first
/// address in it that is not the account's (or "(no address)" when the field holds none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignAuthor {
    pub field: &'static str,
    pub address: String,
}

/// Checks `message` (header and body as the client sent them) against `principal`.
pub fn foreign_author(message: &[u8], principal: &Principal) -> Option<ForeignAuthor> {
    let parsed = MessageParser::new().parse_headers(message)?;
    for (name, field) in [(HeaderName::From, "From"), (HeaderName::Sender, "Sender")] {
        for value in parsed.header_values(name) {
            let foreign = |address: String| Some(ForeignAuthor { field, address });
            let Some(addresses) = value_addresses(value) else { return foreign("(no address)".into()) };
            if addresses.is_empty() {
                return foreign("(no address)".into());
            }
            if let Some(address) = addresses.into_iter().find(|a| !principal.owns(a)) {
                return foreign(address);
            }
        }
    }
    None
}

/// The addresses in a From: or Sender: field; `None` when it does not parse as addresses,
/// and an entry that has none ("undisclosed") counts as not the account's.
fn value_addresses(value: &HeaderValue<'_>) -> Option<Vec<String>> {
    let list = value.as_address()?;
    Some(list.iter().map(|a| a.address().unwrap_or("(no address)").to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Principal {
        Principal { account: 1, address: "alice@example.org".into(), aliases: vec!["sales@example.org".into()] }
    }

    fn check(header: &str) -> Option<(&'static str, String)> {
        let message = format!("{header}Subject: x\r\n\r\nFrom: mallory@evil.test\r\n");
        foreign_author(message.as_bytes(), &alice()).map(|f| (f.field, f.address))
    }

    #[test]
    fn the_account_and_its_aliases_may_be_authors() {
        assert_eq!(check("From: Alice <alice@example.org>\r\n"), None);
        assert_eq!(check("From: \"Sales, Team\" <SALES@Example.ORG>\r\n"), None);
        assert_eq!(check("From: alice@example.org (Alice), sales@example.org\r\nSender: alice@example.org\r\n"), None);
        assert_eq!(check("From: =?UTF-8?B?w6Rsw6Z4?= <alice@example.org>\r\n"), None);
        assert_eq!(check(""), None, "no From: claims nobody; the body is not the header");
    }

    #[test]
    fn anyone_else_is_named() {
        let mallory = Some(("From", "mallory@evil.test".to_string()));
        assert_eq!(check("From: Alice <mallory@evil.test>\r\n"), mallory);
        assert_eq!(check("From: alice@example.org, mallory@evil.test\r\n"), mallory);
        assert_eq!(check("From: \"alice@example.org\" <mallory@evil.test>\r\n"), mallory, "a name is not an address");
        assert_eq!(check("From: friends: alice@example.org, mallory@evil.test;\r\n"), mallory, "groups too");
        assert_eq!(check("From: alice@example.org\r\nFrom: mallory@evil.test\r\n"), mallory, "every From: field");
        assert_eq!(
            check("From: alice@example.org\r\nSender: mallory@evil.test\r\n"),
            Some(("Sender", "mallory@evil.test".to_string()))
        );
        assert_eq!(check("From: undisclosed\r\n").map(|f| f.0), Some("From"));
    }

    #[test]
    fn garbage_never_panics() {
        for header in ["From:\r\n", "From: <>\r\n", "From: \"unterminated\r\n", "From: @\r\n", "From: a@b@c\r\n"] {
            let _ = check(header);
        }
        assert!(check("From:\r\n").is_some());
    }
}
