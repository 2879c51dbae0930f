//! Text for SEARCH: decoded header values, the header cache, and case-insensitive matching
//! (the body text is `body_text`'s).

use mail_parser::parsers::MessageStream;
use mail_parser::HeaderValue;

use crate::tree::Msg;

pub(crate) fn header_values(raw: &[u8], name: &str) -> Vec<String> {
    values_of(&Msg::parse(raw), name)
}

pub(crate) fn address_values(raw: &[u8], name: &str) -> Vec<String> {
    addresses_of(&Msg::parse(raw), name)
}

/// SEARCH FROM/TO/CC/BCC: each field's addresses as `address::search_text` writes them.
fn addresses_of(msg: &Msg<'_>, name: &str) -> Vec<String> {
    msg.fields()
        .iter()
        .filter(|f| f.name(msg.buf).eq_ignore_ascii_case(name.as_bytes()))
        .map(|f| crate::address::search_text(f.raw_value(msg.buf)))
        .collect()
}

fn values_of(msg: &Msg<'_>, name: &str) -> Vec<String> {
    msg.fields()
        .iter()
        .filter(|f| f.name(msg.buf).eq_ignore_ascii_case(name.as_bytes()))
        .map(|f| match MessageStream::new(f.raw_value(msg.buf)).parse_unstructured() {
            HeaderValue::Text(text) => text.into_owned(),
            // An empty field still counts: SEARCH HEADER name "" matches messages that have it.
            _ => String::new(),
        })
        .collect()
}

/// A header section parsed once, for SEARCH keys on several fields of one message: each
/// field's values as [`header_values`](crate::header_values) gives them and its addresses as
/// [`address_values`](crate::address_values) does, without parsing the header again per key.
pub struct ParsedHeader<'a> {
    msg: Msg<'a>,
}

impl<'a> ParsedHeader<'a> {
    pub fn new(raw: &'a [u8]) -> ParsedHeader<'a> {
        ParsedHeader { msg: Msg::parse(raw) }
    }

    pub fn values(&self, name: &str) -> Vec<String> {
        values_of(&self.msg, name)
    }

    pub fn addresses(&self, name: &str) -> Vec<String> {
        addresses_of(&self.msg, name)
    }
}

// ---- The header cache: the decoded values of the fields SEARCH is most often asked about,
// computed once when a message is stored, so that searching them reads a few hundred bytes
// per message instead of parsing its header. The values are exactly what `header_values`
// gives for the header section, so answers do not depend on whether the cache was used.

/// The fields kept in the header cache. Their indexes are part of the stored format.
pub const CACHED_FIELDS: [&str; 8] = ["Message-ID", "Subject", "From", "To", "Cc", "Bcc", "In-Reply-To", "References"];
/// The address fields whose addresses (as [`address_values`](crate::address_values) gives
/// them) the cache keeps too, under indexes from `ADDRESS_BASE` on.
pub const CACHED_ADDRESS_FIELDS: [&str; 4] = ["From", "To", "Cc", "Bcc"];
const ADDRESS_BASE: usize = CACHED_FIELDS.len();
/// First byte of the stored format. Bump it (and add a migration that recomputes the cache)
/// whenever `header_values`, `address_values` or the format changes: a cache of another
/// version is ignored.
const CACHE_VERSION: u8 = 2;
/// A field whose values add up to more than this (a References list of a very long thread,
/// say) is marked as not cached, and SEARCH reads the header for it.
const MAX_CACHED_FIELD: usize = 4096;
/// Marks a field (index | NOT_CACHED) left out of the cache.
const NOT_CACHED: u8 = 0x80;

/// The header cache of a header section (everything before the body, blank line included).
/// Format: the version byte, then entries of (field index, LEB128 length, UTF-8 value) in
/// field order, values of a field in header order; a field left out has one entry
/// (index | 0x80, 0).
pub(crate) fn header_cache(header: &[u8]) -> Vec<u8> {
    let msg = Msg::parse(header);
    let mut out = vec![CACHE_VERSION];
    let fields = CACHED_FIELDS.iter().map(|name| values_of(&msg, name));
    let addresses = CACHED_ADDRESS_FIELDS.iter().map(|name| addresses_of(&msg, name));
    for (index, values) in fields.chain(addresses).enumerate() {
        // Counting what each value takes in the cache bounds it for many tiny values too.
        if values.iter().map(|v| v.len() + 5).sum::<usize>() > MAX_CACHED_FIELD {
            out.extend_from_slice(&[index as u8 | NOT_CACHED, 0]);
            continue;
        }
        for value in values {
            out.push(index as u8);
            let mut len = value.len();
            while len >= 0x80 {
                out.push((len as u8 & 0x7f) | 0x80);
                len >>= 7;
            }
            out.push(len as u8);
            out.extend_from_slice(value.as_bytes());
        }
    }
    out
}

/// A stored header cache, read.
#[derive(Debug, Clone, Copy)]
pub struct HeaderCache<'a> {
    entries: &'a [u8],
}

impl<'a> HeaderCache<'a> {
    /// `None` for a cache of another version.
    pub fn new(stored: &'a [u8]) -> Option<HeaderCache<'a>> {
        match stored.split_first() {
            Some((&CACHE_VERSION, entries)) => Some(HeaderCache { entries }),
            _ => None,
        }
    }

    /// Every value of field `name` (any case), as `header_values` gives them for the header;
    /// `None` when the cache cannot tell (not a cached field, left out, or damaged): read the
    /// header then.
    pub fn values(&self, name: &str) -> Option<Vec<&'a str>> {
        self.entry(CACHED_FIELDS.iter().position(|f| f.eq_ignore_ascii_case(name))?)
    }

    /// The addresses of field `name` (From, To, Cc or Bcc), as
    /// [`address_values`](crate::address_values) gives them; `None` as for [`Self::values`].
    pub fn addresses(&self, name: &str) -> Option<Vec<&'a str>> {
        self.entry(ADDRESS_BASE + CACHED_ADDRESS_FIELDS.iter().position(|f| f.eq_ignore_ascii_case(name))?)
    }

    fn entry(&self, index: usize) -> Option<Vec<&'a str>> {
        let wanted = index as u8;
        let mut values = Vec::new();
        let mut rest = self.entries;
        while let Some((&index, tail)) = rest.split_first() {
            let (len, tail) = read_len(tail)?;
            let value = tail.get(..len)?;
            rest = &tail[len..];
            if index == wanted | NOT_CACHED {
                return None;
            }
            if index == wanted {
                values.push(std::str::from_utf8(value).ok()?);
            }
        }
        Some(values)
    }
}

fn read_len(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let mut len = 0usize;
    for (i, &b) in bytes.iter().enumerate().take(4) {
        len |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((len, &bytes[i + 1..]));
        }
    }
    None
}

/// Whether `needle` (ASCII, already lower case) occurs in `haystack`, ignoring ASCII case.
fn contains_ascii_ci(haystack: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() {
        return true;
    }
    if haystack.len() < needle.len() {
        return false;
    }
    let Ok(needle) = std::str::from_utf8(needle) else { return false };
    // Lower-cased once, then searched with the standard library's two-way search: linear in
    // the haystack whatever the needle. Comparing the needle at every position costs haystack
    // times needle on "aaa…ab" in "aaaa…", which a client sends and stores at will. Bytes that
    // are not UTF-8 become U+FFFD, which an ASCII needle cannot match either way.
    String::from_utf8_lossy(&haystack.to_ascii_lowercase()).contains(needle)
}

/// SEARCH's case-insensitive match (RFC 9051 §6.4.4): whether `haystack`, lower-cased, holds
/// `needle_lower` (a needle already lower-cased with `str::to_lowercase`). The same answer as
/// `haystack.to_lowercase().contains(needle_lower)`, without lower-casing ASCII haystacks.
pub fn contains_lowered(haystack: &str, needle_lower: &str) -> bool {
    if haystack.is_ascii() {
        // ASCII lower-cases to ASCII: a needle with anything else cannot occur.
        return needle_lower.is_ascii() && contains_ascii_ci(haystack.as_bytes(), needle_lower.as_bytes());
    }
    haystack.to_lowercase().contains(needle_lower)
}

/// A quick look at a header section before parsing it: `false` only if no value of field
/// `name` can contain `needle_lower` (lower-cased, see [`contains_lowered`]; empty asks
/// whether the field is there at all) as [`header_values`](crate::header_values) and
/// [`contains_lowered`] would decide it. `true` means "parse and see".
///
/// Sound because of what `header_values` does to a value: without RFC 2047 encoded words (no
/// "=?" anywhere) and without 8-bit bytes, a value is the text of its lines, each trimmed,
/// joined with single spaces. So a needle without white space that occurs in a value occurs
/// in one line of the header, in any case; and an ASCII value cannot hold a non-ASCII needle.
pub fn header_may_contain(header: &[u8], name: &str, needle_lower: &str) -> bool {
    // A field is named by the bytes before its colon, compared ignoring ASCII case.
    if !contains_ascii_ci(header, name.to_ascii_lowercase().as_bytes()) {
        return false;
    }
    if needle_lower.is_empty() {
        return true;
    }
    if !header.is_ascii() || header.windows(2).any(|w| w == b"=?") {
        return true;
    }
    if !needle_lower.is_ascii() {
        return false;
    }
    if needle_lower.bytes().any(|b| b.is_ascii_whitespace()) {
        return true;
    }
    contains_ascii_ci(header, needle_lower.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 13, item 3: "aaa…ab" in "aaaa…" compared the needle at every position: 10^10
    /// steps here. Now linear.
    #[test]
    fn substring_search_is_linear_whatever_the_needle() {
        let haystack = "a".repeat(1_000_000);
        let needle = format!("{}b", "a".repeat(10_000));
        let started = std::time::Instant::now();
        assert!(!contains_lowered(&haystack, &needle));
        assert!(!header_may_contain(format!("Subject: {haystack}\r\n\r\n").as_bytes(), "subject", &needle));
        assert!(contains_lowered(&format!("{haystack}B"), &needle));
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
        assert!(contains_lowered("Grüße aus München", "münchen"));
        assert!(contains_ascii_ci(b"x\xffHeLLo", b"hello"));
        assert!(!contains_ascii_ci(b"hel\xfflo", b"hello"));
    }

    /// What SEARCH did before any shortcut: parse, unfold, decode, lower-case both sides.
    fn slow(header: &[u8], name: &str, needle: &str) -> bool {
        let values = header_values(header, name);
        if needle.is_empty() {
            return !values.is_empty();
        }
        values.iter().any(|v| v.to_lowercase().contains(&needle.to_lowercase()))
    }

    /// The cache, then the quick look before parsing: both must agree with `slow`.
    fn fast(header: &[u8], name: &str, needle: &str) -> bool {
        let needle = needle.to_lowercase();
        let cache = header_cache(header);
        if let Some(values) = HeaderCache::new(&cache).unwrap().values(name) {
            let cached = if needle.is_empty() {
                !values.is_empty()
            } else {
                values.iter().any(|v| contains_lowered(v, &needle))
            };
            assert_eq!(values, header_values(header, name), "{name} in {:?}", String::from_utf8_lossy(header));
            return cached;
        }
        if !header_may_contain(header, name, &needle) {
            return false;
        }
        let values = header_values(header, name);
        if needle.is_empty() {
            !values.is_empty()
        } else {
            values.iter().any(|v| contains_lowered(v, &needle))
        }
    }

    const HEADERS: &[&str] = &[
        // Plain, duplicated, folded, missing, empty fields.
        "Message-ID: <a1@example.org>\r\nSubject: Hello World\r\nFrom: Ann <ann@example.org>\r\n\r\n",
        "Message-Id:<b2@Example.ORG>\r\nmessage-id: <dup@example.org>\r\n\r\n",
        "Subject: a long\r\n  folded\r\n\tsubject line\r\nX-List: one\r\nX-List:  two  \r\n\r\n",
        "To: a@example.org,\r\n b@example.org\r\nCc:\r\nBcc: \r\nX-Empty:\r\n\r\n",
        "Received: from x by y; Mon, 1 Jan 2024 10:00:00 +0000\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\n",
        // Encoded words: adjacent ones joined, one beside text, a broken one kept as text.
        "Subject: =?utf-8?q?Caf=C3=A9?= =?utf-8?q?_cr=C3=A8me?=\r\nFrom: =?iso-8859-1?q?Andr=E9?= <a@b.c>\r\n\r\n",
        "Subject: =?utf-8?b?SGVsbG8=?=World and =?bogus text\r\nX-Tag: =?utf-8?q?hidden_needle?=\r\n\r\n",
        // 8-bit: UTF-8 and Latin-1 (replaced), and the Kelvin sign that lower-cases to ASCII "k".
        "Subject: Caf\u{e9} cr\u{e8}me\r\nX-Kelvin: 5 \u{212a}m\r\n\r\n",
        "Subject: caf\u{00}\r\nX-Latin: Andr\u{1}\r\n\r\n",
        // Odd shapes: space before the colon, bare LF, a name with a space, no final newline,
        // a continuation line at the start, a line without a colon.
        "Subject : spaced out\nX-Odd Name: v\nmessage-id:<c3@x>\n\n",
        " continued\r\nSubject: after\r\nno colon here\r\nTo: z@example.org\r\n\r\n",
        "Subject: no final newline",
        "References: <r1@x> <r2@x>\r\n <r3@x>\r\nIn-Reply-To: <r3@x>\r\n\r\n",
        "",
        "\r\n",
    ];

    const NEEDLES: &[&str] = &[
        "",
        "a",
        "hello",
        "HELLO world",
        "world",
        "<a1@example.org>",
        "<B2@EXAMPLE.org>",
        "dup",
        "folded subject",
        "long folded",
        "  ",
        "two",
        "b@example.org",
        "café",
        "CRÈME",
        "café crème",
        "hidden",
        "needle",
        "k",
        "km",
        "5 k",
        "andré",
        "andr",
        "\u{fffd}",
        "spaced",
        "v",
        "<c3@x>",
        "after",
        "continued",
        "newline",
        "<r3@x>",
        "r2@x> <r3",
        "=?",
        "bogus",
        "?=",
        "ann <ann",
    ];

    const NAMES: &[&str] = &[
        "Message-ID",
        "subject",
        "FROM",
        "To",
        "Cc",
        "Bcc",
        "In-Reply-To",
        "References",
        "X-List",
        "X-Empty",
        "X-Tag",
        "X-Kelvin",
        "X-Latin",
        "X-Odd Name",
        "X-Missing",
        "Received",
        "Date",
        "no colon here",
    ];

    #[test]
    fn shortcuts_agree_with_parsing() {
        let mut latin1 = b"Subject: caf\xe9\r\nFrom: \xff\xfe <x@y>\r\n\r\n".to_vec();
        let mut headers: Vec<Vec<u8>> = HEADERS.iter().map(|h| h.as_bytes().to_vec()).collect();
        headers.push(std::mem::take(&mut latin1));
        let mut matched = 0;
        for header in &headers {
            for name in NAMES {
                for needle in NEEDLES {
                    let expected = slow(header, name, needle);
                    matched += usize::from(expected);
                    assert_eq!(
                        fast(header, name, needle),
                        expected,
                        "{name} {needle:?} in {:?}",
                        String::from_utf8_lossy(header)
                    );
                }
            }
        }
        assert!(matched > 50, "the cases must include matches ({matched})");
    }

    #[test]
    fn generated_headers_agree() {
        // Small pseudo-random headers built from pieces that matter: names in any case,
        // folding, encoded words, 8-bit, odd line ends.
        let pieces: &[&[u8]] = &[
            b"Subject:",
            b"subject :",
            b"From: ",
            b"Message-ID:",
            b"X-A:",
            b"\r\n",
            b"\n",
            b"\r\n ",
            b"\r\n\t",
            b" ",
            b"abc",
            b"ABC",
            b"<id@x>",
            b"=?utf-8?q?a=C3=A9?=",
            b"=?utf-8?b?YWJj?=",
            b"=?x",
            b"\xc3\xa9",
            b"\xe9",
            b"\xe2\x84\xaa",
            b":",
            b"\t",
        ];
        let needles = ["", "abc", "ab", "bc a", "aé", "é", "<id@x>", "k", "x", "a"];
        let names = ["Subject", "From", "Message-ID", "X-A", "X-B"];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..3000 {
            let mut header = Vec::new();
            for _ in 0..(next() % 14) {
                header.extend_from_slice(pieces[(next() % pieces.len() as u64) as usize]);
            }
            if next() % 2 == 0 {
                header.extend_from_slice(b"\r\n\r\n");
            }
            for name in names {
                for needle in needles {
                    assert_eq!(
                        fast(&header, name, needle),
                        slow(&header, name, needle),
                        "{name} {needle:?} in {:?}",
                        String::from_utf8_lossy(&header)
                    );
                }
            }
        }
    }

    #[test]
    fn cached_addresses_agree_with_parsing() {
        let mut headers: Vec<Vec<u8>> = HEADERS.iter().map(|h| h.as_bytes().to_vec()).collect();
        headers.push(b"From: <user-from (comment)@ (comment) domain.org>\r\nTo: g: a@b, c@d;, e:;\r\n\r\n".to_vec());
        headers.push(b"Cc: =?utf-8?q?J=C3=BCrgen?= <j@x>\r\nBcc: \xe9t\xe9 <x@y>\r\n\r\n".to_vec());
        let mut found = 0;
        for header in &headers {
            let cache = header_cache(header);
            let cache = HeaderCache::new(&cache).unwrap();
            for name in CACHED_ADDRESS_FIELDS {
                let parsed = crate::address_values(header, name);
                found += parsed.len();
                assert_eq!(cache.addresses(&name.to_lowercase()), Some(parsed.iter().map(|v| v.as_str()).collect()));
            }
        }
        assert!(found > 5, "the cases hold addresses ({found})");
        let header = b"From: <user-from (comment)@ (comment) domain.org>\r\nTo: g: a@b, c@d;, e:;\r\n\r\n";
        assert_eq!(crate::address_values(header, "from"), vec!["comment <user-from@domain.org>"]);
        assert_eq!(crate::address_values(header, "To"), vec!["g: a@b, c@d;, e: ;"]);
        assert_eq!(HeaderCache::new(&header_cache(header)).unwrap().addresses("X-Other"), None);
    }

    #[test]
    fn long_fields_are_left_out_and_damage_is_ignored() {
        let refs: String = (0..400).map(|i| format!(" <ref{i}@example.org>")).collect();
        let header = format!("References:{refs}\r\nSubject: kept\r\n\r\n");
        let cache = header_cache(header.as_bytes());
        let cache = HeaderCache::new(&cache).unwrap();
        assert_eq!(cache.values("references"), None);
        assert_eq!(cache.values("Subject"), Some(vec!["kept"]));
        assert_eq!(cache.values("X-Other"), None);
        assert!(HeaderCache::new(&[9, 1, 1, b'a']).is_none(), "another version");
        assert!(HeaderCache::new(&[]).is_none());
        let truncated = [CACHE_VERSION, 1, 5, b'a'];
        assert_eq!(HeaderCache::new(&truncated).unwrap().values("Subject"), None);
        let bad_utf8 = [CACHE_VERSION, 1, 1, 0xff];
        assert_eq!(HeaderCache::new(&bad_utf8).unwrap().values("Subject"), None);
        // Lengths past one byte.
        let subject = "s".repeat(300);
        let cache = header_cache(format!("Subject: {subject}\r\n\r\n").as_bytes());
        assert_eq!(HeaderCache::new(&cache).unwrap().values("SUBJECT"), Some(vec![subject.as_str()]));
    }

    #[test]
    fn the_quick_look_rules_out_what_it_can() {
        let plain = b"Message-ID: <a1@example.org>\r\nX-List: one\r\n two\r\n\r\n";
        assert!(!header_may_contain(plain, "X-Missing", ""));
        assert!(!header_may_contain(plain, "X-List", "three"));
        assert!(!header_may_contain(plain, "X-List", "caf\u{e9}"), "an ASCII header holds no 8-bit text");
        assert!(header_may_contain(plain, "x-list", "TWO".to_lowercase().as_str()));
        assert!(header_may_contain(plain, "X-List", "one two"), "white space: cannot tell");
        assert!(header_may_contain(plain, "X-List", ""));
        let encoded = b"X-List: =?utf-8?q?three?=\r\n\r\n";
        assert!(header_may_contain(encoded, "X-List", "three"));
        assert!(header_may_contain("X-List: caf\u{e9}\r\n\r\n".as_bytes(), "X-List", "k"));
    }

    #[test]
    fn lowered_matching() {
        assert!(contains_lowered("Hello World", "o w"));
        assert!(contains_lowered("anything", ""));
        assert!(!contains_lowered("Hello", "hello!"));
        assert!(!contains_lowered("Hello", "é"));
        assert!(contains_lowered("CAFÉ", "café"));
        assert!(contains_lowered("5 \u{212a}m", "k"), "the Kelvin sign lower-cases to k");
        assert!(contains_lowered("x İ y", &"İ".to_lowercase()));
    }
}
