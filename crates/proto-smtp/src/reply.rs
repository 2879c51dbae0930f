//! Reply lines: `code SP enhanced-code SP text CRLF` (RFC 5321 §4.2, RFC 2034).

use std::borrow::Cow;

pub struct Reply<'a> {
    code: u16,
    /// RFC 3463 enhanced status code; empty where none belongs (greeting, 334, 354).
    esc: &'static str,
    text: Cow<'a, str>,
}

impl<'a> Reply<'a> {
    pub fn new(code: u16, esc: &'static str, text: &'a str) -> Self {
        Reply { code, esc, text: Cow::Borrowed(text) }
    }

    pub fn owned(code: u16, esc: &'static str, text: String) -> Reply<'static> {
        Reply { code, esc, text: Cow::Owned(text) }
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.code.to_string().as_bytes());
        out.push(b' ');
        if !self.esc.is_empty() {
            out.extend_from_slice(self.esc.as_bytes());
            out.push(b' ');
        }
        push_text(out, &self.text);
        out.extend_from_slice(b"\r\n");
    }
}

/// `250-first`, `250-...`, `250 last`.
pub fn write_multiline(out: &mut Vec<u8>, code: u16, lines: &[String]) {
    for (i, line) in lines.iter().enumerate() {
        out.extend_from_slice(code.to_string().as_bytes());
        out.push(if i + 1 == lines.len() { b' ' } else { b'-' });
        push_text(out, line);
        out.extend_from_slice(b"\r\n");
    }
}

/// Reply text may echo client input (addresses): never let it carry a line break.
fn push_text(out: &mut Vec<u8>, text: &str) {
    out.extend(text.bytes().map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
}
