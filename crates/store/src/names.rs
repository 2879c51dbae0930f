//! Mailbox names: UTF-8 (IMAP4rev2), "/" between hierarchy levels, "INBOX" case-insensitive.

use crate::MailboxError;

pub const HIERARCHY_DELIMITER: char = '/';
/// Longest name accepted, in bytes.
pub const MAX_MAILBOX_NAME: usize = 1024;

/// The stored form of a mailbox name, or `InvalidName`. A first level spelled "inbox" in any
/// case becomes "INBOX", so that "Inbox" and "inbox/x" name INBOX and its children (RFC 9051
/// §5.1 makes INBOX case-insensitive; children follow, as in other servers). Refused: empty
/// names, empty levels ("/a", "a/", "a//b"), the LIST wildcards "*" and "%", and control
/// characters.
pub fn normalize_mailbox_name(name: &str) -> Result<String, MailboxError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_MAILBOX_NAME
        && name.split(HIERARCHY_DELIMITER).all(|level| !level.is_empty())
        && !name.chars().any(|c| c == '*' || c == '%' || c.is_control());
    if !valid {
        return Err(MailboxError::InvalidName);
    }
    let first = name.split(HIERARCHY_DELIMITER).next().unwrap_or(name);
    Ok(if first.eq_ignore_ascii_case("INBOX") { format!("INBOX{}", &name[first.len()..]) } else { name.to_string() })
}

pub fn is_inbox(normalized: &str) -> bool {
    normalized == "INBOX"
}

/// The ancestors of a normalized name, outermost first: "a/b/c" → ["a", "a/b"].
pub fn parents(normalized: &str) -> Vec<&str> {
    normalized.match_indices(HIERARCHY_DELIMITER).map(|(i, _)| &normalized[..i]).collect()
}

/// The half-open range of names that are descendants of `normalized`: every name starting
/// with "name/" sorts (bytewise, SQLite's BINARY collation) from "name/" up to, excluding,
/// "name0", '0' being the character after '/'.
pub fn descendant_range(normalized: &str) -> (String, String) {
    (format!("{normalized}/"), format!("{normalized}0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity() {
        for bad in ["", "/a", "a/", "a//b", "a*", "%", "a\tb", "a\u{7f}"] {
            assert!(matches!(normalize_mailbox_name(bad), Err(MailboxError::InvalidName)), "{bad:?}");
        }
        assert!(normalize_mailbox_name(&"x".repeat(MAX_MAILBOX_NAME + 1)).is_err());
        assert_eq!(normalize_mailbox_name(&"x".repeat(MAX_MAILBOX_NAME)).unwrap().len(), MAX_MAILBOX_NAME);
        assert_eq!(normalize_mailbox_name("Entwürfe/Ärger").unwrap(), "Entwürfe/Ärger");
    }

    #[test]
    fn inbox_is_case_insensitive() {
        assert_eq!(normalize_mailbox_name("inbox").unwrap(), "INBOX");
        assert_eq!(normalize_mailbox_name("InBox/Old").unwrap(), "INBOX/Old");
        assert_eq!(normalize_mailbox_name("Inboxes").unwrap(), "Inboxes");
        assert_eq!(normalize_mailbox_name("x/inbox").unwrap(), "x/inbox");
    }

    #[test]
    fn hierarchy() {
        assert_eq!(parents("a/b/c"), vec!["a", "a/b"]);
        assert!(parents("a").is_empty());
        let (lo, hi) = descendant_range("a");
        for child in ["a/b", "a/b/c", "a/\u{10ffff}"] {
            assert!(child >= lo.as_str() && child < hi.as_str(), "{child}");
        }
        for other in ["a", "a.b", "ab", "a0", "b"] {
            assert!(!(other >= lo.as_str() && other < hi.as_str()), "{other}");
        }
    }
}
