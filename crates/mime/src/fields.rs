//! Small helpers over raw header bytes: unfolding, tokens, RFC 2047 and RFC 2231 encoding,
//! line counting.

use crate::codec::base64_encode;

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

/// The leading RFC 2045 token of a value such as "base64 (comment)" or "7bit; x". Stopping at
/// the first byte that cannot be in a token (a NUL, 8-bit, a special) keeps what we decode with
/// and what BODYSTRUCTURE shows the same.
pub(crate) fn first_token(value: &[u8]) -> &[u8] {
    let value = trim(value);
    let is_token_char = |b: &u8| (0x21..0x7f).contains(b) && !b"()<>@,;:\\\"/[]?=".contains(b);
    let end = value.iter().position(|b| !is_token_char(b)).unwrap_or(value.len());
    value.get(..end).unwrap_or_default()
}

/// Lines in a body as IMAP counts them: line breaks, plus a last line without one.
pub(crate) fn count_lines(body: &[u8]) -> usize {
    let breaks = body.iter().filter(|&&b| b == b'\n').count();
    breaks + usize::from(body.last().is_some_and(|&b| b != b'\n'))
}

/// A display name for the ENVELOPE: ASCII as it is, anything else as RFC 2047 "B" encoded
/// words (at most 75 characters each, split between characters) so the envelope stays 7-bit.
pub(crate) fn encode_word(text: &str) -> Vec<u8> {
    if text.is_ascii() {
        return text.as_bytes().to_vec();
    }
    // 45 bytes encode to 60 base64 characters: with "=?utf-8?b?" and "?=" that is 72.
    const CHUNK: usize = 45;
    let mut out = Vec::new();
    let mut chunk = String::new();
    for c in text.chars() {
        if chunk.len() + c.len_utf8() > CHUNK {
            push_word(&mut out, &chunk);
            chunk.clear();
        }
        chunk.push(c);
    }
    push_word(&mut out, &chunk);
    out
}

fn push_word(out: &mut Vec<u8>, chunk: &str) {
    if chunk.is_empty() {
        return;
    }
    if !out.is_empty() {
        out.push(b' ');
    }
    out.extend_from_slice(b"=?utf-8?b?");
    out.extend_from_slice(base64_encode(chunk.as_bytes()).as_bytes());
    out.extend_from_slice(b"?=");
}

/// RFC 2231 extended value for a non-ASCII parameter: "utf-8''" then percent-encoding of
/// every byte that is not an attribute-char.
pub(crate) fn rfc2231_value(value: &str) -> Vec<u8> {
    let mut out = b"utf-8''".to_vec();
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    out
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
    fn tokens_and_lines() {
        assert_eq!(first_token(b" BASE64 (why not)\r\n"), b"BASE64");
        assert_eq!(first_token(b""), b"");
        assert_eq!(first_token(b"7bit\0x"), b"7bit");
        assert_eq!(first_token(b"quoted-printable;"), b"quoted-printable");
        assert_eq!(count_lines(b""), 0);
        assert_eq!(count_lines(b"a"), 1);
        assert_eq!(count_lines(b"a\r\n"), 1);
        assert_eq!(count_lines(b"a\r\nb"), 2);
        assert_eq!(count_lines(b"\r\n\r\n"), 2);
    }

    #[test]
    fn encoded_words() {
        assert_eq!(encode_word("John"), b"John");
        assert_eq!(encode_word("Jürgen"), b"=?utf-8?b?SsO8cmdlbg==?=");
        let long = "é".repeat(40);
        let out = String::from_utf8(encode_word(&long)).unwrap();
        assert!(out.split(' ').all(|w| w.len() <= 75 && w.starts_with("=?utf-8?b?")), "{out}");
        assert_eq!(out.split(' ').count(), 2);
    }

    #[test]
    fn rfc2231() {
        assert_eq!(rfc2231_value("naïve file.txt"), b"utf-8''na%C3%AFve%20file.txt");
    }
}
