//! Hostile input: random bytes, MIME-shaped token soup, mutated and truncated real messages,
//! and hand-built bombs. For every input: no panic, output within the documented bounds,
//! ENVELOPE/BODY/BODYSTRUCTURE that parse per the RFC 9051 grammar, and BODYSTRUCTURE that
//! agrees with BODY[section] and BINARY about every part it lists.

mod checker;
mod common;

use checker::{check, sec};
use common::{crlf, ALL};
use portcullis_mime::summarize;

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

/// Inputs the fuzzers found, kept so that each stays fixed (tests/regressions/).
#[test]
fn fuzzer_findings() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/regressions");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("tests/regressions") {
        let path = entry.expect("a directory entry").path();
        check(&std::fs::read(&path).expect("a finding"));
        seen += 1;
    }
    assert!(seen > 0, "no finding read from {}", dir.display());
}
