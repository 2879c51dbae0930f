//! Hostile messages through the ENVELOPE/BODY/BODYSTRUCTURE builder and everything else FETCH
//! and SEARCH derive from a message (mime_check.rs says what is checked), and through SEARCH's
//! header cache and its quick look before parsing, which must answer exactly as parsing does.
#![no_main]
#![forbid(unsafe_code)]

#[path = "../../crates/mime/tests/checker/mod.rs"]
mod mime_check;

use libfuzzer_sys::fuzz_target;
use portcullis_mime::{
    binary, contains_lowered, header_may_contain, header_values, section, HeaderCache, Section, SectionText,
    CACHED_FIELDS,
};

/// SEARCH HEADER name needle, the slow way: the values parsed from the message, both sides
/// lower-cased.
fn slow(values: &[String], needle: &str) -> bool {
    if needle.is_empty() {
        return !values.is_empty();
    }
    values.iter().any(|v| v.to_lowercase().contains(&needle.to_lowercase()))
}

/// The same through the store's shortcuts: the header cache, then the quick look before
/// parsing (`values` is what parsing gives).
fn fast(header: &[u8], cache: &HeaderCache<'_>, name: &str, needle: &str, values: &[String]) -> bool {
    let needle = needle.to_lowercase();
    if let Some(cached) = cache.values(name) {
        assert_eq!(cached, values, "{name} in {:?}", String::from_utf8_lossy(header));
    } else if !header_may_contain(header, name, &needle) {
        return false;
    }
    if needle.is_empty() {
        !values.is_empty()
    } else {
        values.iter().any(|v| contains_lowered(v, &needle))
    }
}

/// Needles worth asking about: pieces of the values themselves (so that matches happen), and
/// a few fixed ones.
fn needles(values: &[String]) -> Vec<String> {
    let mut out = vec![String::new(), "a".into(), "é".into(), "x y".into()];
    for value in values.iter().take(4) {
        let chars: Vec<char> = value.chars().collect();
        let n = chars.len();
        out.push(value.clone());
        out.push(chars[n / 3..(2 * n / 3).max(n / 3)].iter().collect());
        if let Some(word) = value.split_whitespace().nth(1) {
            out.push(word.to_uppercase());
        }
    }
    out
}

fuzz_target!(|raw: &[u8]| {
    let summary = mime_check::check(raw);

    // Parts beyond what BODYSTRUCTURE lists, and specifiers that may not apply.
    for part in [vec![1], vec![1, 2], vec![2, 1, 1], vec![0], vec![u32::MAX]] {
        for text in [None, Some(SectionText::Header), Some(SectionText::Text), Some(SectionText::Mime)] {
            if let Some(bytes) = section(raw, &Section { part: part.clone(), text }) {
                assert!(bytes.len() <= raw.len() + 4);
            }
        }
        if let Ok(Some(bytes)) = binary(raw, &part) {
            assert!(bytes.len() <= raw.len() + 4);
        }
    }

    // The header cache kept beside the message answers SEARCH as parsing the header would.
    let header = &raw[..summary.header_len];
    let cache = HeaderCache::new(&summary.header_cache).expect("a cache of the current version");
    for name in CACHED_FIELDS.iter().copied().chain(["subject", "X-Nope", "Received"]) {
        let values = header_values(raw, name);
        for needle in needles(&values) {
            assert_eq!(
                fast(header, &cache, name, &needle, &values),
                slow(&values, &needle),
                "SEARCH HEADER {name} {needle:?} in {:?}",
                String::from_utf8_lossy(header)
            );
        }
    }
});
