//! Message flags: the five IMAP system flags as bits (as `messages.flags` stores them) and
//! keywords. Keywords are compared case-insensitively (RFC 9051 §2.3.2) and a message holds
//! each at most once, kept sorted so that "already as requested" is a plain comparison.

/// What STORE does with the flags it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOp {
    Add,
    Remove,
    Replace,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    /// Bit set of [`Flags::SEEN`] and the others.
    pub system: u8,
    pub keywords: Vec<String>,
}

impl Flags {
    pub const SEEN: u8 = 1;
    pub const ANSWERED: u8 = 2;
    pub const FLAGGED: u8 = 4;
    pub const DELETED: u8 = 8;
    pub const DRAFT: u8 = 16;
    /// Every system flag this store keeps.
    pub const ALL: u8 = 31;

    pub fn system(bits: u8) -> Flags {
        Flags { system: bits & Flags::ALL, keywords: Vec::new() }
    }

    pub fn has(&self, bit: u8) -> bool {
        self.system & bit != 0
    }

    pub fn has_keyword(&self, keyword: &str) -> bool {
        self.keywords.iter().any(|k| k.eq_ignore_ascii_case(keyword))
    }

    /// The flags after applying `op` with `change`, keywords deduplicated and sorted.
    pub fn apply(&self, op: FlagOp, change: &Flags) -> Flags {
        let mut next = match op {
            FlagOp::Add => {
                let mut keywords = self.keywords.clone();
                keywords.extend(change.keywords.iter().cloned());
                Flags { system: self.system | change.system, keywords }
            }
            FlagOp::Remove => Flags {
                system: self.system & !change.system,
                keywords: self.keywords.iter().filter(|k| !change.has_keyword(k)).cloned().collect(),
            },
            FlagOp::Replace => change.clone(),
        };
        next.system &= Flags::ALL;
        sort_keywords(&mut next.keywords);
        next
    }
}

/// Whether `keyword` can be kept: an IMAP atom (RFC 9051 `flag-keyword`). Others never reach
/// the store from the protocol parser; they are dropped here because the storage format
/// separates keywords with spaces.
pub fn is_valid_keyword(keyword: &str) -> bool {
    !keyword.is_empty() && keyword.bytes().all(|b| b > b' ' && b < 0x7f && !b"(){%*\"\\]".contains(&b))
}

/// Sorted case-insensitively, each keyword once (the first spelling wins).
pub fn sort_keywords(keywords: &mut Vec<String>) {
    keywords.sort_by_key(|k| k.to_ascii_lowercase());
    keywords.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
}

/// `messages.keywords`: space-separated.
pub fn encode_keywords(keywords: &[String]) -> String {
    keywords.join(" ")
}

pub fn decode_keywords(stored: &str) -> Vec<String> {
    if stored.is_empty() {
        // The common case on a 100,000-message SELECT: no allocation.
        return Vec::new();
    }
    stored.split(' ').filter(|k| !k.is_empty()).map(String::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kw(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn operations() {
        let current = Flags { system: Flags::SEEN, keywords: kw(&["$Label1", "work"]) };
        let change = Flags { system: Flags::FLAGGED, keywords: kw(&["WORK", "Home"]) };
        let added = current.apply(FlagOp::Add, &change);
        assert_eq!(added, Flags { system: Flags::SEEN | Flags::FLAGGED, keywords: kw(&["$Label1", "Home", "work"]) });
        let removed = added.apply(FlagOp::Remove, &change);
        assert_eq!(removed, Flags { system: Flags::SEEN, keywords: kw(&["$Label1"]) });
        let replaced = removed.apply(FlagOp::Replace, &Flags { system: 0xff, keywords: kw(&["b", "A", "a"]) });
        assert_eq!(replaced, Flags { system: Flags::ALL, keywords: kw(&["A", "b"]) });
    }

    #[test]
    fn keyword_syntax_and_encoding() {
        assert!(is_valid_keyword("$Forwarded"));
        for bad in ["", "a b", "a]", "\\Seen", "x%", "caf\u{e9}", "a\u{1}"] {
            assert!(!is_valid_keyword(bad), "{bad:?}");
        }
        assert_eq!(decode_keywords(&encode_keywords(&kw(&["a", "$b"]))), kw(&["a", "$b"]));
        assert!(decode_keywords("").is_empty());
    }
}
