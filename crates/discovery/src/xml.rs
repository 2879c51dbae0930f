//! Escaping for everything put into the XML documents (autoconfig, autodiscover, the Apple
//! profile's plist): a domain name or an address comes from a client, so it is text to escape,
//! never markup. Written by hand because the documents are small fixed templates; reading XML
//! (the autodiscover request) is quick-xml's job, in `autodiscover.rs`.

/// `text` escaped for an element's content or a double- or single-quoted attribute value
/// (XML 1.0 §2.4, §3.3.3). Characters XML 1.0 cannot carry at all (§2.2: control characters
/// other than tab, line feed and carriage return) become U+FFFD, so no input can make the
/// document ill-formed; callers refuse such input before it gets here.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{7f}' || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_characters_become_references() {
        assert_eq!(escape("a&b<c>d\"e'f"), "a&amp;b&lt;c&gt;d&quot;e&apos;f");
        assert_eq!(escape("</domain><x>"), "&lt;/domain&gt;&lt;x&gt;");
    }

    #[test]
    fn characters_xml_cannot_carry_are_replaced() {
        assert_eq!(escape("a\u{0}b\u{1b}c\u{fffe}"), "a\u{fffd}b\u{fffd}c\u{fffd}");
        assert_eq!(escape("tab\there"), "tab\there");
        assert_eq!(escape("jörg"), "jörg");
    }
}
