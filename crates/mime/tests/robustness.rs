//! Hostile input: random bytes, MIME-shaped token soup, mutated and truncated real messages,
//! and hand-built bombs. For every input: no panic, output within the documented bounds,
//! ENVELOPE/BODY/BODYSTRUCTURE that parse per the RFC 9051 grammar, and BODYSTRUCTURE that
//! agrees with BODY[section] and BINARY about every part it lists.

mod common;

use common::{crlf, ALL};
use portcullis_mime::{binary, body_text, header_values, section, summarize, Section, SectionText, Summary};

/// xorshift64*: deterministic, good enough to spray bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

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

fn count_lines(b: &[u8]) -> u64 {
    (b.iter().filter(|&&c| c == b'\n').count() + usize::from(b.last().is_some_and(|&c| c != b'\n'))) as u64
}

fn sec(raw: &[u8], path: &[u32], text: Option<SectionText>) -> Option<Vec<u8>> {
    section(raw, &Section { part: path.to_vec(), text })
}

/// The documented bound: ENVELOPE, BODY and BODYSTRUCTURE together stay within
/// 32 × message + 4 KiB.
fn summary_bound(n: usize) -> usize {
    32 * n + 4096
}

/// Everything we can say about one input.
fn check(raw: &[u8]) -> Summary {
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

#[test]
fn samples_pass_every_check() {
    for sample in ALL {
        check(&crlf(sample));
        check(sample.as_bytes());
    }
}

#[test]
fn truncated_samples() {
    for sample in ALL {
        let raw = crlf(sample);
        for len in 0..raw.len() {
            check(&raw[..len]);
        }
    }
}

#[test]
fn mutated_samples() {
    mutate(0x9e37_79b9_7f4a_7c15, 1500);
}

fn mutate(seed: u64, rounds: usize) {
    let mut rng = Rng(seed);
    for round in 0..rounds {
        let mut raw = crlf(ALL[round % ALL.len()]);
        for _ in 0..1 + rng.below(8) {
            let at = rng.below(raw.len() + 1);
            match rng.below(4) {
                0 if at < raw.len() => raw[at] = rng.next() as u8,
                1 => raw.insert(at.min(raw.len()), b"\r\n-:;=\"\\(<@>".get(rng.below(12)).copied().unwrap_or(b'x')),
                2 if at < raw.len() => {
                    raw.remove(at);
                }
                _ => {
                    let from = rng.below(raw.len() + 1);
                    let len = rng.below(40).min(raw.len() - from);
                    let chunk = raw[from..from + len].to_vec();
                    let at = at.min(raw.len());
                    raw.splice(at..at, chunk);
                }
            }
        }
        check(&raw);
    }
}

#[test]
fn random_bytes() {
    spray(0x2545_f491_4f6c_dd1d, 1500);
}

fn spray(seed: u64, rounds: usize) {
    let mut rng = Rng(seed);
    for _ in 0..rounds {
        let len = rng.below(700);
        let raw: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        check(&raw);
    }
}

#[test]
fn mime_shaped_token_soup() {
    soup(0xd1b5_4a32_d192_ed03, 1500);
}

/// The same generators for much longer: `cargo test --release -p portcullis-mime -- --ignored`.
#[test]
#[ignore]
fn long_run() {
    let rounds: usize = std::env::var("MIME_FUZZ_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    for seed in 1..=4u64 {
        mutate(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), rounds);
        spray(seed.wrapping_mul(0x2545_f491_4f6c_dd1d), rounds);
        soup(seed.wrapping_mul(0xd1b5_4a32_d192_ed03), rounds);
    }
}

fn soup(seed: u64, rounds: usize) {
    const TOKENS: &[&[u8]] = &[
        b"Content-Type: multipart/mixed; boundary=b\r\n",
        b"Content-Type: multipart/alternative; boundary=\"c\"\r\n",
        b"Content-Type: multipart/digest; boundary=b\r\n",
        b"Content-Type: message/rfc822\r\n",
        b"Content-Type: message/global\r\n",
        b"Content-Type: text/plain; charset=iso-8859-1; name*=utf-8''%E2%82%AC\r\n",
        b"Content-Type: text/html; charset=utf-16\r\n",
        b"Content-Type: multipart\r\n",
        b"Content-Transfer-Encoding: base64\r\n",
        b"Content-Transfer-Encoding: quoted-printable\r\n",
        b"Content-Transfer-Encoding: x-uuencode\r\n",
        b"Content-Disposition: attachment; filename=\"a\\\"b\"\r\n",
        b"Content-Language: en, de,\r\n",
        b"From: a:;b:c@d;, \"x\" <y@z>\r\n",
        b"From: =?utf-8?b?w6k=?= <e@f>\r\n",
        b"To: =?x?q?\xff?= \xc3\xa9@\xff\r\n",
        b"Subject: =?utf-8?q?=00?= \0\r\n",
        b"Date: Mon, 31 Feb 2024 25:61:61 +9999\r\n",
        b" folded\r\n",
        b"\r\n",
        b"\n",
        b"--b\r\n",
        b"--b--\r\n",
        b"--c\r\n",
        b"--c--\r\n",
        b"QUJD\r\n",
        b"=3D=\r\n",
        b"Subject: x\r\n",
        b"body text\r\n",
        b"\r",
        b"\0",
        b"(",
        b"\"",
    ];
    let mut rng = Rng(seed);
    for _ in 0..rounds {
        let mut raw = Vec::new();
        for _ in 0..rng.below(40) {
            if rng.below(10) == 0 {
                raw.push(rng.next() as u8);
            } else {
                raw.extend_from_slice(TOKENS[rng.below(TOKENS.len())]);
            }
        }
        check(&raw);
    }
}

// ---------------------------------------------------------------------------------------
// Bombs. Each was a real problem for some step before the limits existed.

fn base64(data: &[u8]) -> Vec<u8> {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    for (i, c) in data.chunks(3).enumerate() {
        let n = u32::from(c[0]) << 16 | u32::from(*c.get(1).unwrap_or(&0)) << 8 | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..4 {
            out.push(if k <= c.len() { A[((n >> (18 - 6 * k)) & 63) as usize] } else { b'=' });
        }
        if i % 19 == 18 {
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

fn digest_bomb(parts: usize) -> Vec<u8> {
    let mut raw = b"Content-Type: multipart/digest; boundary=b\r\n\r\n".to_vec();
    raw.extend(b"--b\r\n\r\n".repeat(parts));
    raw.extend_from_slice(b"--b--\r\n");
    raw
}

/// Depth of parentheses: a proxy for nesting in the structure.
fn max_depth(out: &[u8]) -> usize {
    let (mut depth, mut max, mut quoted) = (0usize, 0usize, false);
    let mut prev = 0u8;
    for &b in out {
        match b {
            b'"' if prev != b'\\' => quoted = !quoted,
            b'(' if !quoted => {
                depth += 1;
                max = max.max(depth);
            }
            b')' if !quoted => depth = depth.saturating_sub(1),
            _ => {}
        }
        prev = if prev == b'\\' && b == b'\\' { 0 } else { b };
    }
    max
}

#[test]
fn deep_inline_message_nesting_is_cut() {
    // mail-parser alone builds a nested Message per level and overflows the stack dropping it.
    let raw = b"Content-Type: message/rfc822\r\n\r\n".repeat(200);
    let s = check(&raw);
    assert!(max_depth(&s.bodystructure) < 80, "{}", max_depth(&s.bodystructure));
    // The part below the depth limit is opaque, and a path into it does not exist.
    let deep: Vec<u32> = vec![1; 200];
    assert_eq!(sec(&raw, &deep, None), None);
    // Deep enough that the nested values mail-parser would build overflow a 2 MiB stack.
    let raw = b"Content-Type: message/rfc822\r\n\r\n".repeat(60_000);
    let s = summarize(&raw);
    assert!(max_depth(&s.bodystructure) < 80);
}

#[test]
fn digest_bomb_is_bounded() {
    let raw = digest_bomb(5_000);
    let s = check(&raw);
    assert!(s.bodystructure.len() < 8 * raw.len(), "{}", s.bodystructure.len());
}

#[test]
fn base64_message_holding_a_digest_bomb() {
    // mail-parser alone copies the decoded buffer once per nested message (quadratic memory).
    let mut raw = b"Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: message/rfc822\r\n\
                    Content-Transfer-Encoding: base64\r\n\r\n"
        .to_vec();
    raw.extend(base64(&digest_bomb(5_000)));
    raw.extend_from_slice(b"\r\n--o--\r\n");
    check(&raw);
}

#[test]
fn encoded_messages_nested_in_encoded_messages() {
    let mut raw = b"Subject: core\r\n\r\nhello\r\n".to_vec();
    for _ in 0..30 {
        let mut outer = b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
        outer.extend(base64(&raw));
        raw = outer;
        if raw.len() > 50_000 {
            break;
        }
    }
    check(&raw);
}

#[test]
fn deep_multipart_nesting() {
    let mut raw = Vec::new();
    for i in 0..3000 {
        raw.extend(format!("Content-Type: multipart/mixed; boundary=a{i}\r\n\r\n--a{i}\r\n").as_bytes());
    }
    for i in (0..3000).rev() {
        raw.extend(format!("\r\n--a{i}--\r\n").as_bytes());
    }
    let s = check(&raw);
    assert!(max_depth(&s.bodystructure) < 40);
}

#[test]
fn wide_multipart() {
    let mut raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n".to_vec();
    raw.extend(b"--b\r\n\r\n".repeat(10_000));
    check(&raw);
}

#[test]
fn address_group_bomb() {
    // Three bytes per empty group, two address structures each, copied to sender and reply-to.
    let raw = format!("From: {}\r\nTo: {}\r\n\r\n", "a:;".repeat(30_000), "b@c,".repeat(30_000)).into_bytes();
    let s = check(&raw);
    assert!(s.envelope.len() < 16 * raw.len(), "{} for {}", s.envelope.len(), raw.len());
}

#[test]
fn huge_parameters_and_names() {
    let raw = format!(
        "From: \"{}\" <a@b>\r\nContent-Type: text/plain{}\r\nContent-Disposition: attachment; filename=\"{}\"\r\n\r\nx",
        "\u{e9}".repeat(5000),
        "; p=\u{fffd}".repeat(5000),
        "\u{fffd}".repeat(5000)
    )
    .into_bytes();
    check(&raw);
}
