//! Host names (RFC 1123), for `hostname` here and for `portcullis init`'s `--hostname` and
//! `--domain`; and account addresses in their one spelling, which the store looks accounts up
//! by and the guard counts logins by, so that the two can never disagree about which account a
//! name means. A leaf.

/// Login names longer than this are refused before anything else looks at them: RFC 4616 §2
/// bounds a SASL authentication identity to 255 octets, and an address is shorter still.
pub const MAX_LOGIN_NAME: usize = 255;

/// RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens.
pub fn is_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Lower-cases and checks `local@domain`; `None` if it is not an address an account can have.
/// The local part may be UTF-8 (RFC 6531); the domain must be an ASCII host name (IDNs are
/// written as A-labels). Spaces around the name and around the domain, and a final dot on the
/// domain, are dropped: `" Alice@ Example.ORG."` is `alice@example.org`.
pub fn normalize_address(text: &str) -> Option<String> {
    if text.len() > MAX_LOGIN_NAME {
        return None;
    }
    let text = text.trim();
    let (local, domain) = text.rsplit_once('@')?;
    if local.is_empty()
        || local.len() > 64
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
        || !local.chars().all(|c| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c))
    {
        return None;
    }
    let domain = normalize_domain(domain)?;
    Some(format!("{}@{}", local.to_lowercase(), domain))
}

/// Lower-cases and checks a domain name.
pub fn normalize_domain(text: &str) -> Option<String> {
    let domain = text.trim().trim_end_matches('.').to_ascii_lowercase();
    is_hostname(&domain).then_some(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_lowercased_and_checked() {
        assert_eq!(normalize_address("Alice@Example.ORG").as_deref(), Some("alice@example.org"));
        assert_eq!(normalize_address("a.b+tag@x.y").as_deref(), Some("a.b+tag@x.y"));
        assert_eq!(normalize_address("Jörg@example.org").as_deref(), Some("jörg@example.org"));
        for bad in [
            "",
            "alice",
            "@example.org",
            "alice@",
            "a..b@x.y",
            ".a@x.y",
            "a b@x.y",
            "a@b@",
            "a@-x.y",
            "a@x..y",
            "a\"@x.y",
        ] {
            assert_eq!(normalize_address(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_spelling_of_an_address_is_one() {
        for spelling in ["alice@example.org.", "alice@ example.org", " ALICE@Example.Org. "] {
            assert_eq!(normalize_address(spelling).as_deref(), Some("alice@example.org"), "{spelling:?}");
        }
    }

    #[test]
    fn names_over_the_bound_are_no_address() {
        let long = format!("{}@example.org", "a".repeat(60));
        assert!(normalize_address(&long).is_some());
        assert_eq!(normalize_address(&format!("{long}{}", " ".repeat(MAX_LOGIN_NAME))), None);
    }
}
