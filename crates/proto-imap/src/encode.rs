//! Pieces of responses: flag lists, compact sequence sets, mailbox names.

use portcullis_store::Flags;

pub use portcullis_mime::string;

/// System flags in the order they are listed.
pub const SYSTEM_FLAGS: [(u8, &str); 5] = [
    (Flags::SEEN, "\\Seen"),
    (Flags::ANSWERED, "\\Answered"),
    (Flags::FLAGGED, "\\Flagged"),
    (Flags::DELETED, "\\Deleted"),
    (Flags::DRAFT, "\\Draft"),
];

/// `(\Recent \Seen $Forwarded)`: `recent` is the session's own \Recent (RFC 3501 §2.3.2),
/// which the store does not keep with the other flags.
pub fn flags(out: &mut Vec<u8>, flags: &Flags, recent: bool) {
    out.push(b'(');
    let mut first = true;
    let mut item = |out: &mut Vec<u8>, text: &str| {
        if !first {
            out.push(b' ');
        }
        first = false;
        out.extend_from_slice(text.as_bytes());
    };
    if recent {
        item(out, "\\Recent");
    }
    for (bit, name) in SYSTEM_FLAGS {
        if flags.system & bit != 0 {
            item(out, name);
        }
    }
    for keyword in &flags.keywords {
        item(out, keyword);
    }
    out.push(b')');
}

/// Ascending numbers as a compact set: 1,2,3,7 -> "1:3,7".
pub fn compact_set(numbers: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < numbers.len() {
        let start = numbers[i];
        let mut end = start;
        while i + 1 < numbers.len() && numbers[i + 1] == end.wrapping_add(1) {
            i += 1;
            end = numbers[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

/// A mailbox name as the client expects it: UTF-8 once it enabled IMAP4rev2 or UTF8=ACCEPT,
/// modified UTF-7 before.
pub fn mailbox(out: &mut Vec<u8>, name: &str, utf8: bool) {
    if utf8 {
        string(out, name.as_bytes());
    } else {
        string(out, portcullis_mime::utf7::encode(name).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_sets() {
        assert_eq!(compact_set(&[]), "");
        assert_eq!(compact_set(&[5]), "5");
        assert_eq!(compact_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
    }

    #[test]
    fn flag_lists() {
        let mut out = Vec::new();
        flags(&mut out, &Flags { system: Flags::SEEN | Flags::DELETED, keywords: vec!["$Junk".into()] }, false);
        assert_eq!(out, b"(\\Seen \\Deleted $Junk)");
        let mut out = Vec::new();
        flags(&mut out, &Flags::default(), false);
        assert_eq!(out, b"()");
        let mut out = Vec::new();
        flags(&mut out, &Flags::system(Flags::SEEN), true);
        assert_eq!(out, b"(\\Recent \\Seen)");
        let mut out = Vec::new();
        flags(&mut out, &Flags::default(), true);
        assert_eq!(out, b"(\\Recent)");
    }
}
