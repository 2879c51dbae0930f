//! Mailbox names: decoding what the client sent, INBOX's special spelling, and LIST patterns.

/// The hierarchy delimiter.
pub const DELIMITER: char = '/';

/// The name a client sent, as stored (UTF-8, INBOX normalised). `None` if it cannot be a name.
pub fn decode(raw: &[u8], utf8: bool) -> Option<String> {
    let text = std::str::from_utf8(raw).ok()?;
    let name = if utf8 || !text.contains('&') {
        if !utf8 && !text.is_ascii() {
            // Before UTF-8 is enabled, 8-bit names are not allowed (RFC 3501 §5.1.3).
            return None;
        }
        text.to_string()
    } else {
        portcullis_mime::utf7::decode(text)?
    };
    Some(normalize_inbox(&name))
}

/// "inbox" and "Inbox/sub" are INBOX and INBOX/sub: INBOX is case-insensitive (RFC 9051 §5.1).
pub fn normalize_inbox(name: &str) -> String {
    let (first, rest) = match name.split_once(DELIMITER) {
        Some((first, rest)) => (first, Some(rest)),
        None => (name, None),
    };
    if first.eq_ignore_ascii_case("INBOX") {
        match rest {
            Some(rest) => format!("INBOX{DELIMITER}{rest}"),
            None => "INBOX".to_string(),
        }
    } else {
        name.to_string()
    }
}

/// LIST pattern matching (RFC 9051 §6.3.9): `*` matches anything, `%` anything but the
/// delimiter. Dynamic programming over the name, so hostile patterns cost O(pattern x name).
pub fn matches(pattern: &str, name: &str) -> bool {
    let name: Vec<char> = name.chars().collect();
    // reachable[j]: the pattern so far can match the first j characters of the name.
    let mut reachable = vec![false; name.len() + 1];
    reachable[0] = true;
    for pc in pattern.chars() {
        let mut next = vec![false; name.len() + 1];
        match pc {
            '*' | '%' => {
                let mut open = false;
                for j in 0..=name.len() {
                    open |= reachable[j];
                    next[j] = open;
                    if pc == '%' && j < name.len() && name[j] == DELIMITER {
                        // `%` cannot extend across a delimiter.
                        open = false;
                    }
                }
            }
            c => {
                for j in 0..name.len() {
                    if reachable[j] && name[j] == c {
                        next[j + 1] = true;
                    }
                }
            }
        }
        reachable = next;
    }
    reachable[name.len()]
}

/// The parents of a name: "a/b/c" -> ["a", "a/b"].
pub fn parents(name: &str) -> impl Iterator<Item = &str> {
    name.char_indices().filter(|&(_, c)| c == DELIMITER).map(move |(i, _)| &name[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(matches("*", "INBOX"));
        assert!(matches("*", "a/b/c"));
        assert!(matches("%", "Sent"));
        assert!(!matches("%", "a/b"));
        assert!(matches("a/%", "a/b"));
        assert!(!matches("a/%", "a/b/c"));
        assert!(matches("a/*", "a/b/c"));
        assert!(matches("*b*", "a/b/c"));
        assert!(matches("%/%", "a/b"));
        assert!(!matches("INBOX", "INBOX/x"));
        assert!(matches("", ""));
        assert!(!matches("", "x"));
        assert!(matches("Sent%", "Sent Items"));
        let hostile = "%*".repeat(500);
        assert!(matches(&hostile, &"a".repeat(2000)));
    }

    #[test]
    fn names() {
        assert_eq!(decode(b"inbox", false).as_deref(), Some("INBOX"));
        assert_eq!(decode(b"Inbox/Work", false).as_deref(), Some("INBOX/Work"));
        assert_eq!(decode(b"Inboxes", false).as_deref(), Some("Inboxes"));
        assert_eq!(decode("Grüße".as_bytes(), true).as_deref(), Some("Grüße"));
        assert_eq!(decode("Grüße".as_bytes(), false), None);
        assert_eq!(decode(b"Gr&APwA3w-e", false).as_deref(), Some("Grüße"));
        assert_eq!(decode(b"&-", false).as_deref(), Some("&"));
        assert_eq!(parents("a/b/c").collect::<Vec<_>>(), vec!["a", "a/b"]);
    }
}
