//! IMAP string encoding (RFC 9051 §4.3, RFC 3501 §4.3), shared with the rest of the server.
//!
//! Only the forms every client understands are produced: NIL, a quoted string, or a plain
//! synchronising literal `{N}\r\n<bytes>`. Server-sent literals need no continuation, so the
//! bytes written here can be stored once and replayed to rev1 and rev2 clients alike.

/// Appends `NIL` for `None`, otherwise the value as [`string`] writes it.
pub fn nstring(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(value) => string(out, value),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// Appends `value` as a quoted string when every byte is printable 7-bit ASCII (or TAB),
/// otherwise as a literal.
///
/// NUL bytes are dropped: no IMAP string form (quoted or literal) may carry them, and a
/// message is hostile input, so a NUL in a header must not break the response syntax.
pub fn string(out: &mut Vec<u8>, value: &[u8]) {
    if value.iter().all(|&b| is_quotable(b)) {
        out.push(b'"');
        for &b in value {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        let len = value.iter().filter(|&&b| b != 0).count();
        out.push(b'{');
        out.extend_from_slice(len.to_string().as_bytes());
        out.extend_from_slice(b"}\r\n");
        out.extend(value.iter().copied().filter(|&b| b != 0));
    }
}

/// Appends a decimal number.
pub fn number(out: &mut Vec<u8>, value: usize) {
    out.extend_from_slice(value.to_string().as_bytes());
}

/// TEXT-CHAR minus the quoted-specials handled by escaping; control characters other than
/// TAB go to a literal so that no client has to cope with them inside quotes.
fn is_quotable(b: u8) -> bool {
    b == b'\t' || (0x20..0x7f).contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        string(&mut out, v);
        out
    }

    #[test]
    fn quoted_and_escaped() {
        assert_eq!(s(b"hello"), b"\"hello\"");
        assert_eq!(s(b""), b"\"\"");
        assert_eq!(s(b"a\"b\\c"), b"\"a\\\"b\\\\c\"");
        assert_eq!(s(b"tab\there"), b"\"tab\there\"");
    }

    #[test]
    fn literal_for_8bit_controls_and_line_breaks() {
        assert_eq!(s("é".as_bytes()), b"{2}\r\n\xc3\xa9");
        assert_eq!(s(b"a\r\nb"), b"{4}\r\na\r\nb");
        assert_eq!(s(b"\x01"), b"{1}\r\n\x01");
        assert_eq!(s(b"a\0b"), b"{2}\r\nab");
    }

    #[test]
    fn nil() {
        let mut out = Vec::new();
        nstring(&mut out, None);
        out.push(b' ');
        nstring(&mut out, Some(b"x"));
        assert_eq!(out, b"NIL \"x\"");
    }
}
