//! The message content on the wire: line endings made CRLF (RFC 5321 §2.3.8: CR and LF only
//! ever travel as a pair), a final CRLF added if missing, and for DATA the dot-stuffing of
//! RFC 5321 §4.5.2 with the ".CRLF" terminator. BDAT (RFC 3030) sends the canonical octets
//! unchanged, with their count.

/// The content with every line ended by CRLF (bare LF and bare CR become CRLF), and a CRLF
/// at the end.
pub fn canonical(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + content.len() / 64 + 2);
    let mut i = 0;
    while i < content.len() {
        match content[i] {
            b'\r' if content.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 2;
                continue;
            }
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// DATA's form: canonical, every line that starts with "." gets another, then ".CRLF".
pub fn dot_stuffed(content: &[u8]) -> Vec<u8> {
    let canonical = canonical(content);
    let dots = canonical.split(|&b| b == b'\n').filter(|line| line.first() == Some(&b'.')).count();
    let mut out = Vec::with_capacity(canonical.len() + dots + 3);
    let mut line_start = true;
    for &b in &canonical {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        line_start = b == b'\n';
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Whether the content has octets beyond 7-bit ASCII (and so needs BODY=8BITMIME).
pub fn is_eight_bit(content: &[u8]) -> bool {
    content.iter().any(|&b| b >= 0x80)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dots_at_line_starts_are_doubled_and_the_terminator_added() {
        assert_eq!(dot_stuffed(b".a\r\nb.\r\n.\r\n..c\r\n"), b"..a\r\nb.\r\n..\r\n...c\r\n.\r\n");
        assert_eq!(dot_stuffed(b""), b".\r\n");
    }

    #[test]
    fn bare_line_ends_become_crlf_and_the_last_line_is_ended() {
        assert_eq!(canonical(b"a\nb\rc\r\nd"), b"a\r\nb\r\nc\r\nd\r\n");
        assert_eq!(dot_stuffed(b"x\n.\n"), b"x\r\n..\r\n.\r\n");
    }

    #[test]
    fn a_stuffed_body_never_ends_early() {
        // Whatever the content, the only CRLF.CRLF in the stuffed form is the terminator.
        for content in [&b"\r\n.\r\n"[..], b".", b"\n.\n", b"a\r\n.\r\n.\r\nb", b"\r.\r"] {
            let stuffed = dot_stuffed(content);
            let with_start = [b"\r\n".as_slice(), &stuffed].concat();
            let ends = with_start.windows(5).filter(|w| w == b"\r\n.\r\n").count();
            assert_eq!(ends, 1, "{content:?} -> {stuffed:?}");
            assert!(with_start.ends_with(b"\r\n.\r\n"));
        }
    }
}
