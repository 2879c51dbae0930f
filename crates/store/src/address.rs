//! Account addresses: one spelling per account, so lookups never depend on the case a client
//! typed.

/// Lower-cases and checks `local@domain`; `None` if it is not an address an account can have.
/// The local part may be UTF-8 (RFC 6531); the domain must be an ASCII host name (IDNs are
/// written as A-labels).
pub fn normalize_address(text: &str) -> Option<String> {
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
    portcullis_config::is_hostname(&domain).then_some(domain)
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
}
