//! Content-Transfer-Encoding decoders and the one base64 encoder we need.
//!
//! Written here rather than taken from mail-parser because BINARY must decode the raw part
//! without charset conversion, and must not give up on a stray bad byte: messages in the wild
//! carry junk in base64 bodies, and a client asking for the attachment should still get
//! everything that can be recovered. Output is never longer than the input.

/// A transfer encoding this crate can undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cte {
    /// 7bit, 8bit, binary, or no header at all.
    Identity,
    Base64,
    QuotedPrintable,
}

impl Cte {
    /// Maps a Content-Transfer-Encoding token (already trimmed) to a decoder; `None` for an
    /// encoding we do not know (x-uuencode and friends).
    pub(crate) fn from_token(token: &[u8]) -> Option<Cte> {
        let lower = token.to_ascii_lowercase();
        match lower.as_slice() {
            b"" | b"7bit" | b"8bit" | b"binary" => Some(Cte::Identity),
            b"base64" => Some(Cte::Base64),
            b"quoted-printable" => Some(Cte::QuotedPrintable),
            _ => None,
        }
    }

    pub(crate) fn decode(self, body: &[u8]) -> Vec<u8> {
        match self {
            Cte::Identity => body.to_vec(),
            Cte::Base64 => base64_decode(body),
            Cte::QuotedPrintable => qp_decode(body),
        }
    }
}

fn b64_value(c: u8) -> Option<u32> {
    match c {
        b'A'..=b'Z' => Some(u32::from(c - b'A')),
        b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
        b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Lenient base64: bytes outside the alphabet are skipped, `=` ends a quantum (so bodies that
/// concatenate padded chunks still decode), a dangling single sextet is dropped.
pub(crate) fn base64_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() / 4 * 3 + 3);
    let mut decoder = Base64Decoder::default();
    decoder.feed(input, &mut out);
    decoder.finish(&mut out);
    out
}

/// [`base64_decode`] a piece at a time: the input may be cut anywhere, the quantum in
/// progress is carried over, so that the pieces decode to what the whole would (SEARCH reads
/// a large attachment in windows instead of decoding it whole).
#[derive(Default)]
pub(crate) struct Base64Decoder {
    acc: u32,
    n: u32,
}

impl Base64Decoder {
    pub(crate) fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &c in input {
            if let Some(v) = b64_value(c) {
                self.acc = self.acc << 6 | v;
                self.n += 1;
                if self.n == 4 {
                    out.extend_from_slice(&self.acc.to_be_bytes()[1..]);
                    self.acc = 0;
                    self.n = 0;
                }
            } else if c == b'=' {
                flush_b64(out, self.acc, self.n);
                self.acc = 0;
                self.n = 0;
            }
        }
    }

    pub(crate) fn finish(self, out: &mut Vec<u8>) {
        flush_b64(out, self.acc, self.n);
    }
}

fn flush_b64(out: &mut Vec<u8>, acc: u32, n: u32) {
    match n {
        2 => out.push((acc >> 4) as u8),
        3 => out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]),
        _ => {}
    }
}

/// Standard base64 with padding (RFC 4648 §4), for RFC 2047 encoded words.
pub(crate) fn base64_encode(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b0 = chunk.first().copied().unwrap_or(0);
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let n = u32::from(b0) << 16 | u32::from(b1) << 8 | u32::from(b2);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * k)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Lenient quoted-printable (RFC 2045 §6.7): `=XX` is a byte, `=` at the end of a line is a
/// soft break, trailing whitespace on a line is transport padding and goes; any other `=` is
/// kept literally instead of failing the whole part. Each line decodes on its own, so input
/// cut just after line feeds decodes piece by piece to the bytes the whole gives (SEARCH's
/// body text relies on it).
pub(crate) fn qp_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    // The hard line break ending the previous line (Some(had CR)), written once we know
    // another line follows.
    let mut pending_break: Option<bool> = None;
    for line in input.split(|&b| b == b'\n') {
        if let Some(had_cr) = pending_break.take() {
            if had_cr {
                out.push(b'\r');
            }
            out.push(b'\n');
        }
        let (line, had_cr) = match line.strip_suffix(b"\r") {
            Some(stripped) => (stripped, true),
            None => (line, false),
        };
        let end = line.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(0, |p| p + 1);
        let line = line.get(..end).unwrap_or(line);
        let mut i = 0;
        let mut soft = false;
        while let Some(&b) = line.get(i) {
            if b == b'=' {
                if i + 1 == line.len() {
                    soft = true;
                    break;
                }
                let hi = line.get(i + 1).copied().and_then(hex_value);
                let lo = line.get(i + 2).copied().and_then(hex_value);
                if let (Some(hi), Some(lo)) = (hi, lo) {
                    out.push(hi << 4 | lo);
                    i += 3;
                    continue;
                }
            }
            out.push(b);
            i += 1;
        }
        if !soft {
            pending_break = Some(had_cr);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_roundtrip_and_leniency() {
        for data in [&b""[..], b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar"] {
            assert_eq!(base64_decode(base64_encode(data).as_bytes()), data);
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_decode(b"Zm9v\r\nYmFy\r\n"), b"foobar");
        assert_eq!(base64_decode(b"Zm9v!!Ym*Fy"), b"foobar");
        assert_eq!(base64_decode(b"Zm8=Zm8="), b"fofo");
    }

    #[test]
    fn quoted_printable() {
        assert_eq!(qp_decode(b"caf=C3=A9 au lait"), "café au lait".as_bytes());
        assert_eq!(qp_decode(b"soft=\r\nbreak\r\nhard  \r\n"), b"softbreak\r\nhard\r\n");
        assert_eq!(qp_decode(b"a=\nb"), b"ab");
        assert_eq!(qp_decode(b"bad =ZZ and =4"), b"bad =ZZ and =4");
        assert_eq!(qp_decode(b"=3D"), b"=");
    }
}
