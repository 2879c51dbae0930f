//! The values of the Content-Type, Content-Disposition and Content-Transfer-Encoding fields
//! (RFC 2045 §5.1 and §6.1, RFC 2183, RFC 2231), read from the raw bytes.
//!
//! Parameter values are kept as the message writes them (quotes removed, escapes undone):
//! BODYSTRUCTURE shows them so (RFC 3501 §7.4.2 names the values, not their decoding), as
//! Dovecot does, so that 8-bit or RFC 2047 text in a file name reaches the client unchanged
//! rather than re-encoded. RFC 2231 continuations are joined (`name*0`, `name*1` as `name`;
//! extended ones as `name*`, still percent-encoded), after the parameters without any `*`.

/// Parameters as (lower-case name, value as written).
pub(crate) type Params = Vec<(String, Vec<u8>)>;

/// RFC 2045 §5.1 `tspecials`.
const TSPECIALS: &[u8] = b"()<>@,;:\\\"/[]?=";

/// A token byte. 8-bit bytes are accepted too: senders put them in unquoted values.
fn is_token_byte(b: u8) -> bool {
    b > b' ' && b != 0x7f && !TSPECIALS.contains(&b)
}

/// A cursor over a field value, skipping white space, line breaks and comments (CFWS).
struct Cursor<'v> {
    v: &'v [u8],
    at: usize,
}

impl<'v> Cursor<'v> {
    fn new(v: &'v [u8]) -> Cursor<'v> {
        Cursor { v, at: 0 }
    }

    fn skip_cfws(&mut self) {
        loop {
            match self.v.get(self.at) {
                Some(b' ' | b'\t' | b'\r' | b'\n') => self.at += 1,
                Some(b'(') => {
                    let mut depth = 0usize;
                    while let Some(&b) = self.v.get(self.at) {
                        self.at += 1;
                        match b {
                            b'\\' => self.at += 1,
                            b'(' => depth += 1,
                            b')' => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => return,
            }
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_cfws();
        self.v.get(self.at).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn token(&mut self) -> Option<&'v [u8]> {
        self.skip_cfws();
        let start = self.at;
        while self.v.get(self.at).is_some_and(|&b| is_token_byte(b)) {
            self.at += 1;
        }
        (self.at > start).then(|| &self.v[start..self.at])
    }

    /// A quoted string's content, or a token.
    fn value(&mut self) -> Option<Vec<u8>> {
        if self.peek() != Some(b'"') {
            return self.token().map(<[u8]>::to_vec);
        }
        self.at += 1;
        let mut out = Vec::new();
        while let Some(&b) = self.v.get(self.at) {
            self.at += 1;
            match b {
                b'"' => return Some(out),
                b'\\' => {
                    if let Some(&next) = self.v.get(self.at) {
                        out.push(next);
                        self.at += 1;
                    }
                }
                // Folding inside a quoted string: the line break goes, the space stays.
                b'\r' | b'\n' => {}
                _ => out.push(b),
            }
        }
        Some(out) // Unterminated: what there is.
    }

    fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }

    /// To the next `;` outside quoted strings and comments (or the end).
    fn skip_to_semicolon(&mut self) {
        while let Some(b) = self.peek() {
            match b {
                b';' => return,
                b'"' => {
                    let _ = self.value();
                }
                _ => self.at += 1,
            }
        }
    }
}

/// `(name, value)` pairs after the first `;` of a Content-Type or Content-Disposition value.
/// What cannot be read as a parameter (a missing `=`, a missing `;` between two) is skipped
/// up to the next `;`, as Dovecot skips it.
fn parameters(c: &mut Cursor<'_>) -> Params {
    let mut plain = Vec::new();
    // (base name, section number, extended, value) of RFC 2231 parameters.
    let mut starred: Vec<(String, u32, bool, Vec<u8>)> = Vec::new();
    while c.eat(b';') {
        let parsed = c.token().filter(|_| c.eat(b'=')).and_then(|name| Some((name, c.value()?)));
        if !matches!(c.peek(), None | Some(b';')) {
            c.skip_to_semicolon();
        }
        let Some((name, value)) = parsed else { continue };
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        match name.split_once('*') {
            None => plain.push((name, value)),
            Some((base, rest)) => {
                // "name*", "name*0", "name*0*", "name*1"...
                let (number, extended) = match rest.strip_suffix('*') {
                    Some(digits) => (digits, true),
                    None => (rest, false),
                };
                let section = if number.is_empty() { 0 } else { number.parse().unwrap_or(u32::MAX) };
                starred.push((base.to_string(), section, extended || number.is_empty(), value));
            }
        }
    }
    // Sorted by name (stable: a section repeated keeps its first value first), then joined.
    starred.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let mut joined: Params = Vec::new();
    let mut previous: Option<&str> = None;
    let mut extended = false;
    for (base, _, ext, value) in &starred {
        if previous == Some(base.as_str()) {
            if let Some((_, v)) = joined.last_mut() {
                v.extend_from_slice(value);
            }
            extended |= ext;
        } else {
            if let (Some((name, _)), true) = (joined.last_mut(), extended) {
                name.push('*');
            }
            joined.push((base.clone(), value.clone()));
            extended = *ext;
            previous = Some(base);
        }
    }
    if let (Some((name, _)), true) = (joined.last_mut(), extended) {
        name.push('*');
    }
    plain.extend(joined);
    plain
}

/// A Content-Type value: (type, subtype, parameters), type and subtype lower-cased; `None`
/// when it is not `type "/" subtype` followed only by parameters (RFC 2045 §5.2: such a field
/// counts as absent).
pub(crate) fn content_type(value: &[u8]) -> Option<(String, String, Params)> {
    let mut c = Cursor::new(value);
    let ty = c.token()?;
    if !c.eat(b'/') {
        return None;
    }
    let sub = c.token()?;
    // Anything but parameters right after the subtype makes the whole value unusable.
    if !matches!(c.peek(), None | Some(b';')) {
        return None;
    }
    let params = parameters(&mut c);
    let lower = |b: &[u8]| String::from_utf8_lossy(b).to_ascii_lowercase();
    Some((lower(ty), lower(sub), params))
}

/// A Content-Disposition value (RFC 2183): (type, parameters); `None` without a type.
pub(crate) fn disposition(value: &[u8]) -> Option<(Vec<u8>, Params)> {
    let mut c = Cursor::new(value);
    let ty = c.token()?.to_vec();
    Some((ty, parameters(&mut c)))
}

/// A Content-Transfer-Encoding value: its one token (comments and white space around it
/// allowed); `None` when the value is not exactly one token ("8 bit"): the field then counts
/// as absent, which means 7bit.
pub(crate) fn transfer_encoding(value: &[u8]) -> Option<&[u8]> {
    let mut c = Cursor::new(value);
    let token = c.token()?;
    c.at_end().then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(list: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        list.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())).collect()
    }

    #[test]
    fn types_and_parameters() {
        assert_eq!(
            content_type(b" TEXT/Plain (a comment); CharSet = \"UTF-8\" ; format=flowed\r\n"),
            Some(("text".into(), "plain".into(), p(&[("charset", "UTF-8"), ("format", "flowed")])))
        );
        assert_eq!(
            content_type(b"multipart/mixed;\r\n\tboundary=\"=_a \\\"b\\\"\""),
            Some(("multipart".into(), "mixed".into(), p(&[("boundary", "=_a \"b\"")])))
        );
        assert_eq!(content_type(b"text/plain;"), Some(("text".into(), "plain".into(), vec![])));
        assert_eq!(
            content_type(b"text/plain; name=\"caf\xe9.txt\"").unwrap().2,
            vec![("name".to_string(), b"caf\xe9.txt".to_vec())]
        );
        for invalid in [
            &b"text"[..],
            b"text/",
            b"; charset=x",
            b"text/plain garbage",
            b"",
            b"/plain",
            b"multipart/mixed\r\n\tboundary=b",
        ] {
            assert_eq!(content_type(invalid), None, "{:?}", String::from_utf8_lossy(invalid));
        }
        // A broken parameter is skipped to the next ";", the type stays.
        assert_eq!(content_type(b"text/html; charset; x=y").unwrap().2, p(&[("x", "y")]));
        assert_eq!(
            content_type(b"message/external-body;\r\n access-type=mail-server\r\n server=\"a;b\";\r\n expiration=x")
                .unwrap()
                .2,
            p(&[("access-type", "mail-server"), ("expiration", "x")])
        );
        assert_eq!(
            content_type(b"multipart/mixed; boundary=1; comment=\"\"\r\n  comment=\"x\"").unwrap().2,
            p(&[("boundary", "1"), ("comment", "")])
        );
    }

    #[test]
    fn rfc2231_continuations_are_joined() {
        let (_, _, params) = content_type(
            b"application/x-stuff; title*0*=us-ascii'en'This%20is; title*1*=%2A%2A; title*2=\" it!\"; \
              name*1=\"b\"; name*0=\"a\"; x*=utf-8''%E2%82%AC; plain=1",
        )
        .unwrap();
        assert_eq!(
            params,
            p(&[
                ("plain", "1"),
                ("name", "ab"),
                ("title*", "us-ascii'en'This%20is%2A%2A it!"),
                ("x*", "utf-8''%E2%82%AC")
            ])
        );
    }

    #[test]
    fn dispositions_and_encodings() {
        assert_eq!(
            disposition(b"attachment; filename=a.txt"),
            Some((b"attachment".to_vec(), p(&[("filename", "a.txt")])))
        );
        assert_eq!(disposition(b" ;"), None);
        assert_eq!(transfer_encoding(b" base64 (why not)\r\n"), Some(&b"base64"[..]));
        assert_eq!(transfer_encoding(b"8 bit"), None);
        assert_eq!(transfer_encoding(b""), None);
    }
}
