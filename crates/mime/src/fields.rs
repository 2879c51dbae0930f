//! Small helpers over raw header bytes: unfolding, trimming, line counting.

/// RFC 5322 §2.2.3 unfolding plus trimming: every CR and LF goes (the whitespace that follows
/// a fold stays, so "a\r\n b" reads "a b"), then surrounding whitespace goes.
pub(crate) fn unfold(value: &[u8]) -> Vec<u8> {
    let joined: Vec<u8> = value.iter().copied().filter(|&b| b != b'\r' && b != b'\n').collect();
    trim(&joined).to_vec()
}

pub(crate) fn trim(value: &[u8]) -> &[u8] {
    let is_ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let start = value.iter().position(|b| !is_ws(b)).unwrap_or(value.len());
    let end = value.iter().rposition(|b| !is_ws(b)).map_or(start, |p| p + 1);
    value.get(start..end).unwrap_or_default()
}

/// Lines in a body as IMAP counts them: its line ends (see `structure`).
pub(crate) fn count_lines(body: &[u8]) -> usize {
    body.iter().filter(|&&b| b == b'\n').count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfolding() {
        assert_eq!(unfold(b" Hello\r\n world \r\n"), b"Hello world");
        assert_eq!(unfold(b"\tx\r\n\ty\r\n"), b"x\ty");
        assert_eq!(unfold(b"\r\n"), b"");
    }

    #[test]
    fn lines_are_line_ends() {
        assert_eq!(count_lines(b""), 0);
        assert_eq!(count_lines(b"a"), 0);
        assert_eq!(count_lines(b"a\r\n"), 1);
        assert_eq!(count_lines(b"a\r\nb"), 1);
        assert_eq!(count_lines(b"\r\n\r\n"), 2);
    }
}
