//! Messages holding NUL bytes, as APPEND with a `literal8` (RFC 3516 §4.4, part of IMAP4rev2)
//! may bring them: a part sent with `Content-Transfer-Encoding: binary` can hold any octet.
//! No IMAP string may carry NUL (RFC 9051 §4.3), so BODY[] and BODY[part] of such a message
//! could never be sent. Such parts are stored base64-encoded instead, as RFC 3516 §4.4 allows
//! ("the server MAY ... convert the message"), which is what Dovecot does: BINARY[part] still
//! gives the client back its exact bytes, and BODY[part] is 7-bit.

use crate::codec::base64_encode;
use crate::node::Shape;
use crate::tree::{FieldKind, Msg, Part};
use crate::walk::MAX_DEPTH;

/// What [`encode_nul_parts`] made of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NulBytes {
    /// The message holds no NUL: store it as it is.
    Absent,
    /// Every NUL was in a part's body: the message with those parts base64-encoded.
    Encoded(Vec<u8>),
    /// A NUL sits where no encoding can hide it (a header, or a part too deeply nested): the
    /// message cannot be stored as a valid IMAP message.
    Unencodable,
}

/// Base64-encodes the body of every leaf part that holds a NUL byte, replacing its
/// Content-Transfer-Encoding; message/rfc822 parts are entered (up to the walk's depth limit).
pub fn encode_nul_parts(raw: &[u8]) -> NulBytes {
    if !raw.contains(&0) {
        return NulBytes::Absent;
    }
    let encoded = rewrite(raw, 0);
    if encoded.contains(&0) {
        NulBytes::Unencodable
    } else {
        NulBytes::Encoded(encoded)
    }
}

/// One message level, rewritten: each edit replaces a byte range of `buf`.
fn rewrite(buf: &[u8], depth: usize) -> Vec<u8> {
    let msg = Msg::parse_at(buf, depth);
    let mut edits: Vec<(std::ops::Range<usize>, Vec<u8>)> = Vec::new();
    if let Some(root) = msg.part(0) {
        visit(&msg, root, false, depth, &mut edits);
    }
    edits.sort_by_key(|(range, _)| range.start);
    let mut out = Vec::with_capacity(buf.len() * 4 / 3 + 64);
    let mut at = 0;
    for (range, replacement) in edits {
        if range.start < at || range.end > buf.len() {
            continue; // Overlapping ranges cannot come from one parse; never trust it.
        }
        out.extend_from_slice(&buf[at..range.start]);
        out.extend_from_slice(&replacement);
        at = range.end;
    }
    out.extend_from_slice(&buf[at..]);
    out
}

fn visit(
    msg: &Msg<'_>,
    part: &Part,
    in_digest: bool,
    depth: usize,
    edits: &mut Vec<(std::ops::Range<usize>, Vec<u8>)>,
) {
    let body = msg.slice(&part.body);
    if !body.contains(&0) && !msg.slice(&part.header).contains(&0) {
        return;
    }
    let (shape, ct) = msg.shape(part, msg.ctype(part, in_digest));
    match shape {
        Shape::Multipart(children) if depth < MAX_DEPTH => {
            let digest = ct.sub == "digest";
            for &child in children.iter() {
                if let Some(child) = msg.part(child) {
                    visit(msg, child, digest, depth + 1, edits);
                }
            }
        }
        Shape::Message if depth < MAX_DEPTH => {
            let cte = part.fields.iter().find(|f| f.kind == FieldKind::Cte);
            let identity = cte
                .and_then(|f| crate::content::transfer_encoding(f.raw_value(msg.buf)))
                .is_none_or(|t| matches!(t.to_ascii_lowercase().as_slice(), b"7bit" | b"8bit" | b"binary"));
            if identity {
                edits.push((part.body.clone(), rewrite(body, depth + 1)));
            }
        }
        Shape::Leaf if body.contains(&0) => {
            let header = &part.header;
            // Replace the first Content-Transfer-Encoding (the one that counts) and drop any
            // other, or add one before the blank line that ends the header; a message header
            // without MIME-Version or Content-Type needs MIME-Version for it to count.
            let ctes: Vec<_> = part.fields.iter().filter(|f| f.kind == FieldKind::Cte).collect();
            let mut line = b"Content-Transfer-Encoding: base64\r\n".to_vec();
            if !msg.honours_content_fields(part) {
                line.splice(0..0, b"MIME-Version: 1.0\r\n".iter().copied());
            }
            match ctes.split_first() {
                Some((first, others)) => {
                    for other in others {
                        edits.push((other.start..other.end, Vec::new()));
                    }
                    edits.push((first.start..first.end, line));
                }
                None => {
                    let header_bytes = msg.slice(header);
                    let blank = if header_bytes.ends_with(b"\r\n\r\n") {
                        2
                    } else if header_bytes.ends_with(b"\n\n") {
                        1
                    } else {
                        0
                    };
                    let at = header.end - blank;
                    edits.push((at..at, line));
                }
            }
            // The encoded body ends with a line break if the original did (a part inside a
            // multipart ends before the one that belongs to the next boundary).
            edits.push((part.body.clone(), base64_lines(body, body.ends_with(b"\n"))));
        }
        _ => {}
    }
}

/// Base64 in lines of 76 characters (RFC 2045 §6.8), CRLF between them.
fn base64_lines(data: &[u8], final_break: bool) -> Vec<u8> {
    let text = base64_encode(data);
    let mut out = Vec::with_capacity(text.len() + text.len() / 38 + 2);
    for (i, line) in text.as_bytes().chunks(76).enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(line);
    }
    if final_break {
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_part_binary_becomes_base64() {
        let raw = b"From: a@b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n\x00-\xe4\n\r\n\n";
        let NulBytes::Encoded(out) = encode_nul_parts(raw) else { panic!("encoded") };
        assert_eq!(
            out,
            b"From: a@b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAC3kCg0KCg==\r\n"
        );
        assert_eq!(crate::binary(&out, &[1]), Ok(Some(b"\x00-\xe4\n\r\n\n".to_vec())));
        assert_eq!(encode_nul_parts(b"Subject: x\r\n\r\nplain\r\n"), NulBytes::Absent);
    }

    #[test]
    fn only_the_parts_with_nul_change() {
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\ntext\r\n--b\r\nContent-Type: image/x\r\n\r\n\x00\x01\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\n\x00in\r\n--b--\r\n";
        let NulBytes::Encoded(out) = encode_nul_parts(raw) else { panic!("encoded") };
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.contains("--b\r\n\r\ntext\r\n--b\r\n"), "{text}");
        assert!(
            text.contains("Content-Type: image/x\r\nContent-Transfer-Encoding: base64\r\n\r\nAAE=\r\n--b\r\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "Subject: in\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: base64\r\n\r\nAGlu\r\n--b--\r\n"
            ),
            "the message inside is rewritten too: {text}"
        );
        assert_eq!(crate::binary(&out, &[2]), Ok(Some(b"\x00\x01".to_vec())));
        assert_eq!(crate::section(&out, &crate::Section { part: vec![1], text: None }), Some(b"text".to_vec()));
    }

    #[test]
    fn a_message_without_mime_version_gets_one() {
        let raw = b"Subject: x\r\n\r\n\x00\r\n";
        let NulBytes::Encoded(out) = encode_nul_parts(raw) else { panic!("encoded") };
        assert_eq!(out, b"Subject: x\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: base64\r\n\r\nAA0K\r\n");
        assert_eq!(crate::binary(&out, &[1]), Ok(Some(b"\x00\r\n".to_vec())));
    }

    #[test]
    fn nul_in_a_header_cannot_be_encoded() {
        assert_eq!(encode_nul_parts(b"Subject: a\x00b\r\n\r\nbody\r\n"), NulBytes::Unencodable);
    }
}
