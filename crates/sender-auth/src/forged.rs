//! RFC 8601 §5: a border MTA deletes every `Authentication-Results` field that arrives
//! bearing its own authserv-id before adding its own, so a verdict forged by the sender (or
//! an earlier hop) can never pass for ours. Fields of other authserv-ids stay: they are other
//! servers' statements, and §5 leaves them to the reader's judgement.
//!
//! Works on the raw header section (byte-exact for everything kept): a field is its first
//! line and the continuation lines that start with a space or tab (RFC 5322 §2.2.3).

use std::borrow::Cow;

/// The message without the fields claiming `authserv_id`, and how many were removed. The
/// authserv-id is compared without regard to case or a trailing dot, after any comments
/// and folding before it (RFC 8601 §2.2: `authserv-id` may follow CFWS, may be quoted).
pub fn strip_forged_authentication_results<'m>(message: &'m [u8], authserv_id: &str) -> (Cow<'m, [u8]>, usize) {
    let ours = normalise(authserv_id.as_bytes());
    let mut kept: Vec<u8> = Vec::new();
    let mut removed = 0;
    let mut copied_up_to = 0; // message[..copied_up_to] is decided (kept or dropped)
    for field in fields(message) {
        if is_authentication_results(field.bytes)
            && authserv_id_of(field.bytes).is_some_and(|id| normalise(&id) == ours)
        {
            if removed == 0 {
                kept.reserve(message.len());
            }
            kept.extend_from_slice(&message[copied_up_to..field.start]);
            copied_up_to = field.start + field.bytes.len();
            removed += 1;
        }
    }
    if removed == 0 {
        return (Cow::Borrowed(message), 0);
    }
    kept.extend_from_slice(&message[copied_up_to..]);
    (Cow::Owned(kept), removed)
}

struct Field<'m> {
    start: usize,
    /// The field's lines, line endings included.
    bytes: &'m [u8],
}

/// The header fields, up to the empty line that ends the header section (or the end).
fn fields(message: &[u8]) -> Vec<Field<'_>> {
    let mut fields: Vec<Field<'_>> = Vec::new();
    let mut pos = 0;
    let mut current: Option<usize> = None; // start of the field being read
    while pos < message.len() {
        let end = message[pos..].iter().position(|&b| b == b'\n').map_or(message.len(), |i| pos + i + 1);
        let line = &message[pos..end];
        let is_blank = line == b"\r\n" || line == b"\n";
        let is_continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if !is_continuation {
            if let Some(start) = current.take() {
                fields.push(Field { start, bytes: &message[start..pos] });
            }
            if is_blank {
                return fields;
            }
            current = Some(pos);
        }
        pos = end;
    }
    if let Some(start) = current {
        fields.push(Field { start, bytes: &message[start..] });
    }
    fields
}

fn is_authentication_results(field: &[u8]) -> bool {
    let Some(colon) = field.iter().position(|&b| b == b':') else { return false };
    // RFC 5322 §4.5.2 (obsolete syntax still met): blanks may stand before the colon.
    let name = field[..colon].trim_ascii_end();
    name.eq_ignore_ascii_case(b"Authentication-Results")
}

/// The authserv-id: after the colon, skip folding whitespace and (nested) comments, then
/// a quoted-string or the run of characters up to a blank, ';', '(' or the end.
fn authserv_id_of(field: &[u8]) -> Option<Vec<u8>> {
    let colon = field.iter().position(|&b| b == b':')?;
    let mut rest = &field[colon + 1..];
    loop {
        rest = rest.trim_ascii_start();
        if rest.first() == Some(&b'(') {
            rest = skip_comment(rest)?;
        } else {
            break;
        }
    }
    if rest.first() == Some(&b'"') {
        let mut id = Vec::new();
        let mut escaped = false;
        for &b in &rest[1..] {
            match (escaped, b) {
                (false, b'\\') => escaped = true,
                (false, b'"') => return Some(id),
                (_, b'\r' | b'\n') => {} // folding inside the quotes
                _ => {
                    id.push(b);
                    escaped = false;
                }
            }
        }
        return None; // unterminated: not a well-formed authserv-id
    }
    let end = rest.iter().position(|&b| b.is_ascii_whitespace() || b == b';' || b == b'(').unwrap_or(rest.len());
    (end > 0).then(|| rest[..end].to_vec())
}

/// Skips a comment (which may nest and hold quoted-pairs); `None` if it never closes.
fn skip_comment(input: &[u8]) -> Option<&[u8]> {
    let mut depth = 0usize;
    let mut escaped = false;
    for (i, &b) in input.iter().enumerate() {
        match (escaped, b) {
            (true, _) => escaped = false,
            (false, b'\\') => escaped = true,
            (false, b'(') => depth += 1,
            (false, b')') => {
                depth -= 1;
                if depth == 0 {
                    return Some(&input[i + 1..]);
                }
            }
            _ => {}
        }
    }
    None
}

fn normalise(id: &[u8]) -> Vec<u8> {
    let id = id.trim_ascii();
    let id = id.strip_suffix(b".").unwrap_or(id);
    id.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = "mx.example.org";

    fn strip(message: &str) -> (String, usize) {
        let (out, removed) = strip_forged_authentication_results(message.as_bytes(), OURS);
        (String::from_utf8(out.into_owned()).unwrap(), removed)
    }

    #[test]
    fn our_fields_go_in_every_disguise_others_stay() {
        let message = "Received: from a\r\n\
            Authentication-Results: mx.example.org; dmarc=pass\r\n\
            Authentication-Results: other.example; spf=fail\r\n\
            authentication-results : MX.Example.ORG.; dkim=pass\r\n\
            Authentication-Results: (a (nested) comment)\r\n mx.example.org;\r\n\tspf=pass\r\n\
            Authentication-Results: \"mx.example.org\" 1; arc=pass\r\n\
            Authentication-Results:mx.example.org;iprev=pass\r\n\
            Authentication-Results: mx.example.org.evil; spf=pass\r\n\
            Subject: hi\r\n\
            \r\n\
            Authentication-Results: mx.example.org; in the body, untouched\r\n";
        let (out, removed) = strip(message);
        assert_eq!(removed, 5);
        assert_eq!(
            out,
            "Received: from a\r\n\
             Authentication-Results: other.example; spf=fail\r\n\
             Authentication-Results: mx.example.org.evil; spf=pass\r\n\
             Subject: hi\r\n\
             \r\n\
             Authentication-Results: mx.example.org; in the body, untouched\r\n"
        );
    }

    #[test]
    fn nothing_to_remove_borrows_the_message() {
        let message = b"Subject: hi\r\n\r\nbody\r\n";
        let (out, removed) = strip_forged_authentication_results(message, OURS);
        assert_eq!(removed, 0);
        assert!(matches!(out, Cow::Borrowed(_)));
    }

    #[test]
    fn bare_lf_messages_and_header_only_messages_work() {
        let (out, removed) = strip("Authentication-Results: mx.example.org; spf=pass\nSubject: x\n\nbody\n");
        assert_eq!((out.as_str(), removed), ("Subject: x\n\nbody\n", 1));
        let (out, removed) = strip("Subject: x\r\nAuthentication-Results: mx.example.org; spf=pass");
        assert_eq!((out.as_str(), removed), ("Subject: x\r\n", 1));
    }

    /// Random messages built from the pieces that matter to the parser: no panic, nothing
    /// claiming our id survives (stripping twice removes nothing more), the body is never
    /// touched, and a message with nothing to remove comes back as it was.
    #[test]
    fn random_messages_hold_the_properties() {
        const PIECES: &[&[u8]] = &[
            b"Authentication-Results:",
            b"authentication-results :",
            b"mx.example.org",
            b"MX.EXAMPLE.ORG.",
            b"other.example",
            b"\"",
            b"\\",
            b"(",
            b")",
            b";",
            b" ",
            b"\t",
            b"\r\n",
            b"\n",
            b"\r\n ",
            b"\r\n\r\n",
            b"Subject: x",
            b"spf=pass",
            b":",
            b"\xff",
            b"\r\nAuthentication-Results: mx.example.org; ",
            b"\nAuthentication-Results:(c)\r\n \"MX.example.org\" 1;",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut total_removed = 0;
        for _ in 0..20_000 {
            let mut message = Vec::new();
            for _ in 0..next() % 24 {
                message.extend_from_slice(PIECES[(next() % PIECES.len() as u64) as usize]);
            }
            let (out, removed) = strip_forged_authentication_results(&message, OURS);
            total_removed += removed;
            let (again, removed_again) = strip_forged_authentication_results(&out, OURS);
            assert_eq!(
                removed_again,
                0,
                "{:?} -> {:?}",
                String::from_utf8_lossy(&message),
                String::from_utf8_lossy(&out)
            );
            assert_eq!(again.as_ref(), out.as_ref());
            if removed == 0 {
                assert_eq!(out.as_ref(), message.as_slice());
            }
            let body_start = [&b"\r\n\r\n"[..], b"\n\n", b"\n\r\n", b"\r\n\n"]
                .iter()
                .filter_map(|sep| message.windows(sep.len()).position(|w| w == *sep).map(|at| at + sep.len()))
                .min();
            if let Some(start) = body_start {
                assert!(out.ends_with(&message[start..]), "{:?}", String::from_utf8_lossy(&message));
            }
        }
        assert!(total_removed > 500, "the generator rarely makes a field to remove: {total_removed}");
    }

    #[test]
    fn broken_fields_do_not_panic_and_are_kept() {
        for odd in [
            "Authentication-Results:\r\n\r\n",
            "Authentication-Results: (unclosed comment mx.example.org; spf=pass\r\n\r\n",
            "Authentication-Results: \"unterminated\r\n\r\n",
            "Authentication-Results\r\n\r\n",
            "\r\n",
            "",
        ] {
            let (out, removed) = strip(odd);
            assert_eq!((out.as_str(), removed), (odd, 0), "{odd:?}");
        }
    }
}
