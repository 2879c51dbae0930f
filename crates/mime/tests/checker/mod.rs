//! What a FETCH client may rely on in ENVELOPE, BODY and BODYSTRUCTURE, checked for any
//! message: the output parses per the RFC 9051 grammar, stays within the documented bounds,
//! and agrees with BODY[section] and BINARY about every part it lists.
//!
//! Shared by tests/robustness.rs and the fuzz target fuzz/fuzz_targets/mime_summary.rs (which
//! includes this file by path), so that both hold the summary to the same promises.

use portcullis_mime::{binary, body_text, header_values, section, summarize, Section, SectionText, Summary};
// ---------------------------------------------------------------------------------------
// A small reader for the IMAP data we produce: NIL, numbers, quoted strings, literals, lists.

#[derive(Debug, Clone, PartialEq)]
enum Item {
    Nil,
    Num(u64),
    Str(Vec<u8>),
    List(Vec<Item>),
}

struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn parse(input: &[u8]) -> Result<Item, String> {
        let mut r = Reader { input, pos: 0 };
        let item = r.item()?;
        if r.pos != input.len() {
            return Err(format!("trailing bytes at {}", r.pos));
        }
        Ok(item)
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn item(&mut self) -> Result<Item, String> {
        match self.peek() {
            Some(b'(') => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    match self.peek() {
                        Some(b')') if !items.is_empty() => {
                            self.pos += 1;
                            return Ok(Item::List(items));
                        }
                        _ => {
                            // Items are separated by one space, except that a list may
                            // directly follow a list (bodies in a multipart, addresses).
                            if !items.is_empty() {
                                if self.peek() == Some(b' ') {
                                    self.pos += 1;
                                } else if self.peek() != Some(b'(') || !matches!(items.last(), Some(Item::List(_))) {
                                    return Err(format!("missing space at {}", self.pos));
                                }
                            }
                            items.push(self.item()?);
                        }
                    }
                }
            }
            Some(b'"') => {
                self.pos += 1;
                let mut s = Vec::new();
                loop {
                    match self.peek() {
                        Some(b'"') => {
                            self.pos += 1;
                            return Ok(Item::Str(s));
                        }
                        Some(b'\\') => {
                            let c = self.input.get(self.pos + 1).copied();
                            if !matches!(c, Some(b'"' | b'\\')) {
                                return Err("bad escape".into());
                            }
                            s.extend(c);
                            self.pos += 2;
                        }
                        Some(c) if c == b'\t' || (0x20..0x7f).contains(&c) => {
                            s.push(c);
                            self.pos += 1;
                        }
                        other => return Err(format!("bad byte {other:?} in quoted string at {}", self.pos)),
                    }
                }
            }
            Some(b'{') => {
                let close = self.input[self.pos..].iter().position(|&b| b == b'}').ok_or("unterminated literal")?;
                let len: usize = std::str::from_utf8(&self.input[self.pos + 1..self.pos + close])
                    .ok()
                    .and_then(|n| n.parse().ok())
                    .ok_or("bad literal length")?;
                let start = self.pos + close + 1;
                if self.input.get(start..start + 2) != Some(b"\r\n") {
                    return Err("literal without CRLF".into());
                }
                let data = self.input.get(start + 2..start + 2 + len).ok_or("short literal")?;
                if data.contains(&0) {
                    return Err("NUL in literal".into());
                }
                self.pos = start + 2 + len;
                Ok(Item::Str(data.to_vec()))
            }
            Some(b'N') if self.input[self.pos..].starts_with(b"NIL") => {
                self.pos += 3;
                Ok(Item::Nil)
            }
            Some(b'0'..=b'9') => {
                let mut n: u64 = 0;
                while let Some(d @ b'0'..=b'9') = self.peek() {
                    n = n.checked_mul(10).and_then(|n| n.checked_add(u64::from(d - b'0'))).ok_or("number overflow")?;
                    self.pos += 1;
                }
                Ok(Item::Num(n))
            }
            other => Err(format!("unexpected {other:?} at {}", self.pos)),
        }
    }
}

fn is_nstring(i: &Item) -> bool {
    matches!(i, Item::Nil | Item::Str(_))
}

fn check_envelope(e: &Item) -> Result<(), String> {
    let Item::List(f) = e else { return Err("envelope is not a list".into()) };
    if f.len() != 10 {
        return Err(format!("envelope has {} fields", f.len()));
    }
    for i in [0, 1, 8, 9] {
        if !is_nstring(&f[i]) {
            return Err(format!("envelope field {i} is not an nstring"));
        }
    }
    for list in &f[2..8] {
        match list {
            Item::Nil => {}
            Item::List(addrs) => {
                let mut in_group = false;
                for a in addrs {
                    let Item::List(a) = a else { return Err("address is not a list".into()) };
                    if a.len() != 4 || !a.iter().all(is_nstring) {
                        return Err("address is not four nstrings".into());
                    }
                    match (&a[2], &a[3]) {
                        (Item::Nil, Item::Nil) => {
                            if !in_group {
                                return Err("group end without start".into());
                            }
                            in_group = false;
                        }
                        (Item::Str(_), Item::Nil) => {
                            if in_group {
                                return Err("nested group".into());
                            }
                            in_group = true;
                        }
                        (_, Item::Str(_)) => {}
                        _ => return Err("host given without mailbox".into()),
                    }
                }
                if in_group {
                    return Err("group not closed".into());
                }
            }
            _ => return Err("address list is not NIL or a list".into()),
        }
    }
    Ok(())
}

fn check_params(p: &Item) -> Result<(), String> {
    match p {
        Item::Nil => Ok(()),
        Item::List(v) if v.len() % 2 == 0 && v.iter().all(|i| matches!(i, Item::Str(_))) => Ok(()),
        _ => Err(format!("bad parameter list {p:?}")),
    }
}

fn check_extension(rest: &[Item], multipart: bool) -> Result<(), String> {
    // multipart: params dsp lang loc; single part: md5 dsp lang loc.
    let [first, dsp, lang, loc] = rest else { return Err(format!("extension has {} fields", rest.len())) };
    if multipart {
        check_params(first)?
    } else if !is_nstring(first) {
        return Err("md5".into());
    }
    match dsp {
        Item::Nil => {}
        Item::List(d) if d.len() == 2 && matches!(d[0], Item::Str(_)) => check_params(&d[1])?,
        _ => return Err("disposition".into()),
    }
    match lang {
        Item::Nil | Item::Str(_) => {}
        Item::List(l) if l.iter().all(|i| matches!(i, Item::Str(_))) => {}
        _ => return Err("language".into()),
    }
    if !is_nstring(loc) {
        return Err("location".into());
    }
    Ok(())
}

/// One part as BODYSTRUCTURE describes it.
#[derive(Debug)]
struct Described {
    path: Vec<u32>,
    kind: Kind,
    encoding: Vec<u8>,
    size: u64,
    lines: Option<u64>,
}

#[derive(Debug, PartialEq)]
enum Kind {
    Multipart { children: u32 },
    Message,
    Leaf,
}

fn upper(i: &Item) -> Vec<u8> {
    match i {
        Item::Str(s) => s.to_ascii_uppercase(),
        _ => Vec::new(),
    }
}

/// Checks a body per the grammar and records every part with its IMAP number. A message's
/// multipart root shares the number of the message part; any other root is number 1 below it.
fn check_body(b: &Item, ext: bool, path: Vec<u32>, out: &mut Vec<Described>, depth: usize) -> Result<(), String> {
    if depth > 200 {
        return Err("absurd depth".into());
    }
    let Item::List(f) = b else { return Err("body is not a list".into()) };
    if matches!(f.first(), Some(Item::List(_))) {
        let n = f.iter().take_while(|i| matches!(i, Item::List(_))).count();
        for (k, child) in f[..n].iter().enumerate() {
            let mut p = path.clone();
            p.push(k as u32 + 1);
            check_body(child, ext, p, out, depth + 1)?;
        }
        let rest = &f[n..];
        if !matches!(rest.first(), Some(Item::Str(_))) {
            return Err("multipart without subtype".into());
        }
        if ext {
            check_extension(&rest[1..], true)?
        } else if rest.len() != 1 {
            return Err("BODY multipart with extension data".into());
        }
        out.push(Described {
            path,
            kind: Kind::Multipart { children: n as u32 },
            encoding: Vec::new(),
            size: 0,
            lines: None,
        });
        return Ok(());
    }
    if f.len() < 7 {
        return Err(format!("basic body with {} fields", f.len()));
    }
    if !matches!((&f[0], &f[1]), (Item::Str(_), Item::Str(_))) {
        return Err("type/subtype".into());
    }
    check_params(&f[2])?;
    if !is_nstring(&f[3]) || !is_nstring(&f[4]) || !matches!(f[5], Item::Str(_)) {
        return Err("id/description/encoding".into());
    }
    let Item::Num(size) = f[6] else { return Err("size".into()) };
    let (ty, sub) = (upper(&f[0]), upper(&f[1]));
    let mut at = 7;
    let mut lines = None;
    let mut kind = Kind::Leaf;
    if ty == b"MESSAGE" && sub == b"RFC822" {
        let (Some(env), Some(inner), Some(Item::Num(l))) = (f.get(7), f.get(8), f.get(9)) else {
            return Err("message/rfc822 without envelope, body, lines".into());
        };
        check_envelope(env)?;
        let inner_is_multipart = matches!(inner, Item::List(v) if matches!(v.first(), Some(Item::List(_))));
        let mut inner_path = path.clone();
        if !inner_is_multipart {
            inner_path.push(1);
        }
        // The inner root is listed under the message's number; keep the outer one first.
        let mut inner_parts = Vec::new();
        check_body(inner, ext, inner_path, &mut inner_parts, depth + 1)?;
        lines = Some(*l);
        kind = Kind::Message;
        at = 10;
        out.push(Described { path: path.clone(), kind, encoding: upper(&f[5]), size, lines });
        out.extend(inner_parts.into_iter().filter(|d| d.path != path));
    } else {
        if ty == b"TEXT" {
            let Some(Item::Num(l)) = f.get(7) else { return Err("text without lines".into()) };
            lines = Some(*l);
            at = 8;
        }
        out.push(Described { path, kind, encoding: upper(&f[5]), size, lines });
    }
    let rest = &f[at..];
    if ext {
        check_extension(rest, false)
    } else if rest.is_empty() {
        Ok(())
    } else {
        Err("BODY with extension data".into())
    }
}

/// Line ends, as IMAP servers count a body's lines (the line break before a boundary is the
/// boundary's, so a last line without one is not counted).
fn count_lines(b: &[u8]) -> u64 {
    b.iter().filter(|&&c| c == b'\n').count() as u64
}

pub fn sec(raw: &[u8], path: &[u32], text: Option<SectionText>) -> Option<Vec<u8>> {
    section(raw, &Section { part: path.to_vec(), text })
}

/// The documented bound: ENVELOPE, BODY and BODYSTRUCTURE together stay within
/// 32 × message + 4 KiB.
fn summary_bound(n: usize) -> usize {
    32 * n + 4096
}

/// Everything we can say about one input.
pub fn check(raw: &[u8]) -> Summary {
    let ctx = || String::from_utf8_lossy(&raw[..raw.len().min(300)]).into_owned();
    let n = raw.len();
    let s = summarize(raw);
    let total = s.envelope.len() + s.body.len() + s.bodystructure.len();
    assert!(total <= summary_bound(n), "summary {total} bytes for {n}: {}", ctx());
    assert!(s.header_len <= n);

    let env = Reader::parse(&s.envelope).unwrap_or_else(|e| panic!("envelope: {e}: {}", ctx()));
    check_envelope(&env).unwrap_or_else(|e| panic!("envelope: {e}: {}", ctx()));
    let bs = Reader::parse(&s.bodystructure).unwrap_or_else(|e| panic!("bodystructure: {e}: {}", ctx()));
    let body = Reader::parse(&s.body).unwrap_or_else(|e| panic!("body: {e}: {}", ctx()));
    let mut parts = Vec::new();
    check_body(&bs, true, Vec::new(), &mut parts, 0).unwrap_or_else(|e| panic!("bodystructure: {e}: {}", ctx()));
    let top_multipart = matches!(&bs, Item::List(v) if matches!(v.first(), Some(Item::List(_))));
    if !top_multipart {
        // A single-part message: the only part is number 1 (check_body saw it as the root).
        for p in parts.iter_mut() {
            if p.path.is_empty() {
                p.path = vec![1];
            } else {
                p.path.insert(0, 1);
            }
        }
    }
    let mut body_parts = Vec::new();
    check_body(&body, false, Vec::new(), &mut body_parts, 0).unwrap_or_else(|e| panic!("body: {e}: {}", ctx()));
    assert_eq!(parts.len(), body_parts.len(), "BODY and BODYSTRUCTURE disagree: {}", ctx());

    // Whole message, header, text.
    let header = sec(raw, &[], Some(SectionText::Header)).expect("HEADER");
    let text = sec(raw, &[], Some(SectionText::Text)).expect("TEXT");
    assert_eq!(header.len(), s.header_len);
    assert_eq!([header, text].concat(), raw);
    assert_eq!(sec(raw, &[], None).as_deref(), Some(raw));
    for spec in [
        SectionText::HeaderFields(vec!["from".into(), "subject".into()]),
        SectionText::HeaderFieldsNot(vec!["to".into()]),
    ] {
        let out = sec(raw, &[], Some(spec)).expect("HEADER.FIELDS");
        assert!(out.len() <= s.header_len + 4 && out.ends_with(b"\r\n"));
    }

    // Every part BODYSTRUCTURE lists exists, with the size and line count it claims. Each
    // lookup walks the message again, so for the bombs only the first and last parts.
    let sample: Vec<&Described> = if parts.len() > 64 {
        parts.iter().take(32).chain(parts.iter().skip(parts.len() - 32)).collect()
    } else {
        parts.iter().collect()
    };
    for p in sample {
        if p.path.is_empty() {
            continue;
        }
        let bytes =
            sec(raw, &p.path, None).unwrap_or_else(|| panic!("part {:?} listed but missing: {}", p.path, ctx()));
        assert!(bytes.len() <= n);
        let mime = sec(raw, &p.path, Some(SectionText::Mime)).expect("MIME");
        assert!(mime.len() <= n);
        match p.kind {
            Kind::Multipart { children } => {
                let mut next = p.path.clone();
                next.push(children + 1);
                assert_eq!(sec(raw, &next, None), None, "part {next:?} beyond the last child: {}", ctx());
                assert_eq!(sec(raw, &p.path, Some(SectionText::Header)), None);
            }
            Kind::Message | Kind::Leaf => {
                assert_eq!(bytes.len() as u64, p.size, "size of {:?}: {}", p.path, ctx());
                if let Some(lines) = p.lines {
                    assert_eq!(count_lines(&bytes), lines, "lines of {:?}: {}", p.path, ctx());
                }
                let identity = matches!(p.encoding.as_slice(), b"7BIT" | b"8BIT" | b"BINARY");
                match binary(raw, &p.path) {
                    Ok(Some(decoded)) => {
                        assert!(decoded.len() <= bytes.len());
                        if identity {
                            assert_eq!(decoded, bytes);
                        }
                    }
                    Ok(None) => panic!("BINARY of listed part {:?} missing", p.path),
                    Err(_) => assert!(!identity && !matches!(p.encoding.as_slice(), b"BASE64" | b"QUOTED-PRINTABLE")),
                }
                if p.kind == Kind::Message {
                    let h = sec(raw, &p.path, Some(SectionText::Header)).expect("message HEADER");
                    let t = sec(raw, &p.path, Some(SectionText::Text)).expect("message TEXT");
                    if identity {
                        assert_eq!([h, t].concat(), bytes, "HEADER+TEXT of {:?}: {}", p.path, ctx());
                    }
                } else {
                    assert_eq!(sec(raw, &p.path, Some(SectionText::Text)), None);
                }
            }
        }
    }

    let text = body_text(raw);
    assert!(text.len() <= 4 * n + 64, "body_text {} for {n}", text.len());
    for name in ["subject", "from", "x-nope"] {
        let values = header_values(raw, name);
        assert!(values.iter().map(String::len).sum::<usize>() <= 4 * n + 64);
    }
    s
}
