//! Hostile messages through everything FETCH and SEARCH derive from them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_mime::{binary, body_text, header_values, section, summarize, Section, SectionText};

fuzz_target!(|raw: &[u8]| {
    let summary = summarize(raw);
    assert!(summary.header_len <= raw.len());
    for part in [vec![], vec![1], vec![1, 2], vec![2, 1, 1]] {
        for text in [None, Some(SectionText::Header), Some(SectionText::Text), Some(SectionText::Mime)] {
            let _ = section(raw, &Section { part: part.clone(), text });
        }
        let _ = binary(raw, &part);
    }
    let _ = header_values(raw, "Subject");
    let _ = body_text(raw);
});
