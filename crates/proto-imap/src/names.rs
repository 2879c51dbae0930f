//! Mailbox names: decoding what the client sent, INBOX's special spelling, and LIST patterns.

use std::collections::HashMap;

/// The hierarchy delimiter.
pub const DELIMITER: char = '/';

/// The name a client sent, as stored (UTF-8, INBOX normalised). `None` if it cannot be a name.
pub fn decode(raw: &[u8], utf8: bool) -> Option<String> {
    let text = std::str::from_utf8(raw).ok()?;
    let name = if utf8 || !text.contains('&') {
        if !utf8 && !text.is_ascii() {
            // Before UTF-8 is enabled, 8-bit names are not allowed (RFC 3501 §5.1.3).
            return None;
        }
        text.to_string()
    } else {
        portcullis_mime::utf7::decode(text)?
    };
    Some(normalize_inbox(&name))
}

/// "inbox" and "Inbox/sub" are INBOX and INBOX/sub: INBOX is case-insensitive (RFC 9051 §5.1).
pub fn normalize_inbox(name: &str) -> String {
    let (first, rest) = match name.split_once(DELIMITER) {
        Some((first, rest)) => (first, Some(rest)),
        None => (name, None),
    };
    if first.eq_ignore_ascii_case("INBOX") {
        match rest {
            Some(rest) => format!("INBOX{DELIMITER}{rest}"),
            None => "INBOX".to_string(),
        }
    } else {
        name.to_string()
    }
}

/// LIST pattern matching (RFC 9051 §6.3.9): `*` matches anything, `%` anything but the
/// delimiter. One name, one pattern; a LIST compiles its patterns once ([`Pattern`]).
pub fn matches(pattern: &str, name: &str) -> bool {
    Pattern::new(pattern).matches(name)
}

/// A LIST pattern compiled once per command and matched against every name in time linear in
/// the name, the pattern's positions handled 64 at a time: bit `i` of the state says the
/// pattern's first `i` positions match what has been read of the name (a bit-parallel
/// automaton, as `agrep`'s; no per-character allocation, no backtracking). A run of wildcards
/// is one wildcard (`*` if it holds one, else `%`), so that doubling wildcards buys nothing.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// Positions: each literal character or wildcard (after runs are merged).
    positions: usize,
    /// Words per state: `positions + 1` bits.
    words: usize,
    /// For each literal character, the positions that hold it.
    literal: HashMap<char, Vec<u64>>,
    /// Positions right after a `*`, and right after a `%`: a state there stays on reading a
    /// character (any, or any but the delimiter).
    after_star: Vec<u64>,
    after_percent: Vec<u64>,
    /// Positions that hold a wildcard: a state there may skip it (it matches nothing).
    wild: Vec<u64>,
    /// Wildcards, after runs are merged.
    wildcards: usize,
}

impl Pattern {
    pub fn new(pattern: &str) -> Pattern {
        let mut chars: Vec<char> = Vec::with_capacity(pattern.len());
        for c in pattern.chars() {
            match (chars.last_mut(), c) {
                (Some(last @ ('*' | '%')), '*' | '%') => {
                    if c == '*' {
                        *last = '*';
                    }
                }
                _ => chars.push(c),
            }
        }
        let positions = chars.len();
        let words = (positions + 1).div_ceil(64);
        let mut pattern = Pattern {
            positions,
            words,
            literal: HashMap::new(),
            after_star: vec![0; words],
            after_percent: vec![0; words],
            wild: vec![0; words],
            wildcards: 0,
        };
        for (i, &c) in chars.iter().enumerate() {
            match c {
                '*' | '%' => {
                    set(&mut pattern.wild, i);
                    set(if c == '*' { &mut pattern.after_star } else { &mut pattern.after_percent }, i + 1);
                    pattern.wildcards += 1;
                }
                c => {
                    set(pattern.literal.entry(c).or_insert_with(|| vec![0; words]), i);
                }
            }
        }
        pattern
    }

    /// Wildcards, runs counted once.
    pub fn wildcards(&self) -> usize {
        self.wildcards
    }

    pub fn matches(&self, name: &str) -> bool {
        let mut accepted = false;
        self.run(name, |_, at_end, accept| {
            if at_end {
                accepted = accept;
            }
        });
        accepted
    }

    /// The byte lengths of the parents of `name` ("a" and "a/b" of "a/b/c") that match, in
    /// one pass over the name.
    pub fn matching_parents(&self, name: &str) -> Vec<usize> {
        let mut found = Vec::new();
        self.run(name, |end, at_end, accept| {
            if accept && !at_end && end > 0 {
                found.push(end);
            }
        });
        found
    }

    /// Reads `name`, calling `seen(bytes read, at the end, pattern matched so far)` before
    /// every delimiter and at the end. Stops early once nothing can match any more.
    fn run(&self, name: &str, mut seen: impl FnMut(usize, bool, bool)) {
        let mut state = vec![0u64; self.words];
        let mut next = vec![0u64; self.words];
        let none = vec![0u64; self.words];
        state[0] = 1;
        self.skip_wildcards(&mut state);
        for (at, c) in name.char_indices() {
            if c == DELIMITER {
                seen(at, false, self.accepts(&state));
            }
            let literal = self.literal.get(&c).unwrap_or(&none);
            let after_percent = if c == DELIMITER { &none } else { &self.after_percent };
            let mut carry = 0;
            for w in 0..self.words {
                let moved = state[w] & literal[w];
                next[w] = (moved << 1) | carry | (state[w] & (self.after_star[w] | after_percent[w]));
                carry = moved >> 63;
            }
            self.skip_wildcards(&mut next);
            std::mem::swap(&mut state, &mut next);
            if state.iter().all(|&w| w == 0) {
                return;
            }
        }
        seen(name.len(), true, self.accepts(&state));
    }

    fn accepts(&self, state: &[u64]) -> bool {
        state[self.positions / 64] >> (self.positions % 64) & 1 == 1
    }

    /// A state on a wildcard may also be past it (the wildcard matching nothing). Runs are
    /// merged, so a wildcard is never followed by another: one step is enough.
    fn skip_wildcards(&self, state: &mut [u64]) {
        let mut carry = 0;
        for (word, wild) in state.iter_mut().zip(&self.wild) {
            let skipped = *word & wild;
            *word |= (skipped << 1) | carry;
            carry = skipped >> 63;
        }
    }
}

fn set(bits: &mut [u64], i: usize) {
    bits[i / 64] |= 1 << (i % 64);
}

/// Bytes of LIST patterns one command may name, its reference counted with each: room for a
/// few patterns as long as the longest mailbox name (1 KiB), and a bound on what one LIST
/// costs (each pattern byte is one bit of the automaton's state, read once per name character).
pub const MAX_PATTERN_BYTES: usize = 4096;
/// Wildcards one pattern may hold, runs counted once; real patterns hold one or two
/// ("INBOX/*", "%/%").
pub const MAX_WILDCARDS: usize = 16;

/// The patterns of one LIST or LSUB, compiled once, with INBOX's case-insensitive spelling:
/// "inbox/%" also matches "INBOX/x" (RFC 9051 §5.1).
#[derive(Debug, Clone)]
pub struct Patterns {
    /// Each pattern, and its INBOX-normalized form when that differs.
    compiled: Vec<(Pattern, Option<Pattern>)>,
}

/// Why patterns were refused: past [`MAX_PATTERN_BYTES`] or [`MAX_WILDCARDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooComplex;

impl Patterns {
    pub fn new(texts: &[String]) -> Result<Patterns, TooComplex> {
        if texts.iter().map(|t| t.len().max(1)).sum::<usize>() > MAX_PATTERN_BYTES {
            return Err(TooComplex);
        }
        let mut compiled = Vec::with_capacity(texts.len());
        for text in texts {
            let pattern = Pattern::new(text);
            if pattern.wildcards() > MAX_WILDCARDS {
                return Err(TooComplex);
            }
            let inbox = normalize_inbox(text);
            compiled.push((pattern, (inbox != *text).then(|| Pattern::new(&inbox))));
        }
        Ok(Patterns { compiled })
    }

    pub fn matches(&self, name: &str) -> bool {
        self.compiled.iter().any(|(plain, inbox)| {
            plain.matches(name) || (name.starts_with("INBOX") && inbox.as_ref().is_some_and(|p| p.matches(name)))
        })
    }

    /// The parents of `name` that some pattern matches, shortest first.
    pub fn matching_parents<'n>(&self, name: &'n str) -> Vec<&'n str> {
        let mut ends: Vec<usize> = Vec::new();
        for (plain, inbox) in &self.compiled {
            ends.extend(plain.matching_parents(name));
            if let (true, Some(inbox)) = (name.starts_with("INBOX"), inbox) {
                ends.extend(inbox.matching_parents(name));
            }
        }
        ends.sort_unstable();
        ends.dedup();
        ends.into_iter().map(|end| &name[..end]).collect()
    }
}

/// The parents of a name: "a/b/c" -> ["a", "a/b"].
pub fn parents(name: &str) -> impl Iterator<Item = &str> {
    name.char_indices().filter(|&(_, c)| c == DELIMITER).map(move |(i, _)| &name[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(matches("*", "INBOX"));
        assert!(matches("*", "a/b/c"));
        assert!(matches("%", "Sent"));
        assert!(!matches("%", "a/b"));
        assert!(matches("a/%", "a/b"));
        assert!(!matches("a/%", "a/b/c"));
        assert!(matches("a/*", "a/b/c"));
        assert!(matches("*b*", "a/b/c"));
        assert!(matches("%/%", "a/b"));
        assert!(!matches("INBOX", "INBOX/x"));
        assert!(matches("", ""));
        assert!(!matches("", "x"));
        assert!(matches("Sent%", "Sent Items"));
        let hostile = "%*".repeat(500);
        assert!(matches(&hostile, &"a".repeat(2000)));
        assert_eq!(Pattern::new(&hostile).wildcards(), 1, "a run of wildcards is one");
        assert_eq!(Pattern::new("a%%b**c%*d*%e").wildcards(), 4);
        // Past 64 positions, across the words of the state.
        let long = format!("{}*{}", "ab".repeat(40), "ba".repeat(40));
        assert!(matches(&long, &format!("{}x/y{}", "ab".repeat(40), "ba".repeat(40))));
        assert!(!matches(&long, &format!("{}{}", "ab".repeat(40), "ba".repeat(39))));
        assert!(matches(&"é".repeat(100), &"é".repeat(100)));
    }

    /// The pattern as the definition reads it: what the bit-parallel automaton must agree with.
    fn reference(pattern: &[char], name: &[char]) -> bool {
        match pattern.split_first() {
            None => name.is_empty(),
            Some(('*', rest)) => (0..=name.len()).any(|i| reference(rest, &name[i..])),
            Some(('%', rest)) => (0..=name.len())
                .take_while(|&i| i == 0 || name[i - 1] != DELIMITER)
                .any(|i| reference(rest, &name[i..])),
            Some((c, rest)) => name.first() == Some(c) && reference(rest, &name[1..]),
        }
    }

    /// Every pattern and name of up to 5 characters over a small alphabet.
    #[test]
    fn the_automaton_agrees_with_the_definition() {
        fn all(alphabet: &[char], max: usize) -> Vec<Vec<char>> {
            let mut out = vec![vec![]];
            let mut last = vec![vec![]];
            for _ in 0..max {
                last = last
                    .iter()
                    .flat_map(|w: &Vec<char>| alphabet.iter().map(move |&c| [w.clone(), vec![c]].concat()))
                    .collect();
                out.extend(last.iter().cloned());
            }
            out
        }
        let patterns = all(&['a', '/', '*', '%'], 5);
        let names = all(&['a', 'b', '/'], 5);
        for p in &patterns {
            let text: String = p.iter().collect();
            let compiled = Pattern::new(&text);
            for n in &names {
                let name: String = n.iter().collect();
                assert_eq!(compiled.matches(&name), reference(p, n), "{text:?} on {name:?}");
                let parents: Vec<usize> = parents(&name)
                    .filter(|parent| !parent.is_empty() && reference(p, &parent.chars().collect::<Vec<_>>()))
                    .map(str::len)
                    .collect();
                assert_eq!(compiled.matching_parents(&name), parents, "{text:?} on the parents of {name:?}");
            }
        }
    }

    #[test]
    fn names() {
        assert_eq!(decode(b"inbox", false).as_deref(), Some("INBOX"));
        assert_eq!(decode(b"Inbox/Work", false).as_deref(), Some("INBOX/Work"));
        assert_eq!(decode(b"Inboxes", false).as_deref(), Some("Inboxes"));
        assert_eq!(decode("Grüße".as_bytes(), true).as_deref(), Some("Grüße"));
        assert_eq!(decode("Grüße".as_bytes(), false), None);
        assert_eq!(decode(b"Gr&APwA3w-e", false).as_deref(), Some("Grüße"));
        assert_eq!(decode(b"&-", false).as_deref(), Some("&"));
        assert_eq!(parents("a/b/c").collect::<Vec<_>>(), vec!["a", "a/b"]);
    }
}
