//! Modified UTF-7 for IMAP mailbox names (RFC 3501 §5.1.3), written by hand because it is
//! small and must be exact: printable ASCII stands for itself, `&` is written `&-`, and every
//! other run of characters is UTF-16BE in base64 with `,` for `/`, no padding, between `&`
//! and `-`.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// Encodes a mailbox name for the wire.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut run: Vec<u16> = Vec::new();
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut out, &mut run);
            out.push(c);
            if c == '&' {
                out.push('-');
            }
        } else {
            let mut units = [0u16; 2];
            run.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush(&mut out, &mut run);
    out
}

/// Decodes a mailbox name from the wire; `None` unless the input is exactly what [`encode`]
/// would produce (so one name has one spelling, and invalid or ambiguous input is refused).
pub fn decode(encoded: &str) -> Option<String> {
    let bytes = encoded.as_bytes();
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if !(0x20..0x7f).contains(&b) {
            return None;
        }
        if b != b'&' {
            out.push(char::from(b));
            i += 1;
            continue;
        }
        let rest = bytes.get(i + 1..)?;
        let len = rest.iter().position(|&c| c == b'-')?;
        let run = rest.get(..len)?;
        if run.is_empty() {
            out.push('&');
        } else {
            out.push_str(&decode_run(run)?);
        }
        i += len + 2;
    }
    (encode(&out) == encoded).then_some(out)
}

fn flush(out: &mut String, run: &mut Vec<u16>) {
    if run.is_empty() {
        return;
    }
    let bytes: Vec<u8> = run.iter().flat_map(|u| u.to_be_bytes()).collect();
    out.push('&');
    for chunk in bytes.chunks(3) {
        let b = [0, 1, 2].map(|k| chunk.get(k).copied().unwrap_or(0));
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for k in 0..chars {
            let index = (n >> (18 - 6 * k)) & 63;
            out.push(char::from(ALPHABET[index as usize]));
        }
    }
    out.push('-');
    run.clear();
}

fn decode_run(run: &[u8]) -> Option<String> {
    let mut bits: u32 = 0;
    let mut nbits = 0;
    let mut bytes = Vec::with_capacity(run.len());
    for &c in run {
        let value = ALPHABET.iter().position(|&a| a == c)? as u32;
        bits = (bits << 6 | value) & 0xffff;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            bytes.push((bits >> nbits) as u8);
        }
    }
    if bytes.len() % 2 != 0 {
        return None;
    }
    let units = bytes.chunks_exact(2).map(|p| u16::from_be_bytes([0, 1].map(|k| p.get(k).copied().unwrap_or(0))));
    char::decode_utf16(units).collect::<Result<String, _>>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3501_example() {
        // RFC 3501 §5.1.3: "~peter/mail/台北/日本語"
        let name = "~peter/mail/\u{53f0}\u{5317}/\u{65e5}\u{672c}\u{8a9e}";
        assert_eq!(encode(name), "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
        assert_eq!(decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-").as_deref(), Some(name));
    }

    #[test]
    fn ampersand_and_ascii() {
        assert_eq!(encode("Tom & Jerry"), "Tom &- Jerry");
        assert_eq!(decode("Tom &- Jerry").as_deref(), Some("Tom & Jerry"));
        assert_eq!(encode("INBOX"), "INBOX");
    }

    #[test]
    fn non_bmp_and_accents() {
        for name in ["Entwürfe", "Corbeille/Éléments supprimés", "😀 smile", "日本", "a\u{7f}b"] {
            let wire = encode(name);
            assert!(wire.bytes().all(|b| (0x20..0x7f).contains(&b)), "{wire}");
            assert_eq!(decode(&wire).as_deref(), Some(name));
        }
        assert_eq!(encode("Entwürfe"), "Entw&APw-rfe");
    }

    #[test]
    fn rejects_invalid_and_non_canonical() {
        assert_eq!(decode("&U,BTFw"), None); // unterminated
        assert_eq!(decode("&AGE-"), None); // "a" must be written directly
        assert_eq!(decode("&APw-&APw-"), None); // two runs must be one
        assert_eq!(decode("&APx-"), None); // non-zero padding bits
        assert_eq!(decode("&AP-"), None); // odd number of bytes
        assert_eq!(decode("&2D0-"), None); // lone surrogate
        assert_eq!(decode("&A*w-"), None); // not in the alphabet
        assert_eq!(decode("caf\u{e9}"), None); // 8-bit is never valid on the wire
        assert_eq!(decode("a\tb"), None);
    }
}
