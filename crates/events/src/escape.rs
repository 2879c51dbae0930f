//! Untrusted text (user names, client input quoted in errors, a hostile server's replies)
//! written so that it stays on its one line and shows as what it is: every character that could
//! end a line, move the cursor, recolour a terminal, or reorder or hide what is shown is written
//! as an escape. Used by every log format, by alert texts, and by `portcullis check`'s report.
//!
//! serde_json escapes only C0 controls, `"` and `\`; DEL, C1 controls (U+0080..U+009F, which
//! some terminals obey), the Unicode line separators and the bidi and zero-width format
//! characters pass through it raw, hence [`StrictJson`].

use std::borrow::Cow;
use std::io;

use serde::Serialize;

/// Whether `c` must not reach a log line or a terminal as itself: C0 and C1 controls and DEL
/// (line breaks, ANSI escape sequences), U+2028/U+2029 (line and paragraph separators), and the
/// invisible format characters that reorder or hide text (zero-width characters, bidi marks,
/// embeddings, overrides and isolates, the byte order mark).
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}'
        )
}

/// `text` with each unsafe character written as a JSON-style escape (`\n`, `\r`, `\t`, or
/// `\u001b`, `\u202e`), and `\` doubled so that an escape cannot be faked; borrowed when there
/// was nothing to escape.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| is_unsafe(c) || c == '\\') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        push_escaped(&mut out, c);
    }
    Cow::Owned(out)
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        // Every unsafe character is in the Basic Multilingual Plane: four hex digits suffice.
        c if is_unsafe(c) => out.push_str(&format!("\\u{:04x}", c as u32)),
        c => out.push(c),
    }
}

/// A serde_json formatter that also escapes what [`is_unsafe`] names and serde_json leaves
/// raw. The output is still JSON, and parses back to the same text.
pub struct StrictJson;

impl serde_json::ser::Formatter for StrictJson {
    fn write_string_fragment<W: ?Sized + io::Write>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()> {
        // serde_json has already taken out C0 controls, '"' and '\' (and escaped them).
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if is_unsafe(c) {
                writer.write_all(&fragment.as_bytes()[start..i])?;
                write!(writer, "\\u{:04x}", c as u32)?;
                start = i + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// `value` as one line of JSON in which every unsafe character is escaped.
pub fn to_strict_json<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, StrictJson);
    if value.serialize(&mut serializer).is_err() {
        return String::new();
    }
    // The serializer writes only valid UTF-8 (escapes are ASCII, the rest is copied from &str).
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_as_it_is() {
        for text in ["alice@example.org", "müller@exämple.org", "250 mail.example.org ESMTP", ""] {
            assert!(matches!(printable(text), Cow::Borrowed(t) if t == text), "{text}");
        }
    }

    #[test]
    fn what_could_forge_recolour_or_reorder_is_escaped() {
        assert_eq!(printable("a\nb\rc\td"), "a\\nb\\rc\\td");
        assert_eq!(printable("\u{1b}[2Kx"), "\\u001b[2Kx");
        assert_eq!(printable("\u{7f}\u{9b}"), "\\u007f\\u009b", "DEL and the C1 CSI");
        assert_eq!(printable("a\u{2028}b\u{2029}"), "a\\u2028b\\u2029");
        assert_eq!(printable("evil\u{202e}gpj.exe"), "evil\\u202egpj.exe");
        assert_eq!(printable("zero\u{200b}width\u{feff}"), "zero\\u200bwidth\\ufeff");
        // A backslash is doubled, so that typing "\n" cannot pass for an escaped line break.
        assert_eq!(printable("a\\nb"), "a\\\\nb");
        for text in ["a\nb", "\u{1b}]0;title\u{7}", "x\u{85}y", "\u{2066}iso\u{2069}"] {
            assert!(!printable(text).chars().any(is_unsafe), "{text:?}");
        }
    }

    #[test]
    fn strict_json_escapes_more_and_still_round_trips() {
        let text = "m\u{a0}n\nq\"\\\u{7f}\u{85}\u{202e}\u{1F600}";
        let json = to_strict_json(&serde_json::json!({ "user": text }));
        assert!(!json.chars().any(is_unsafe), "{json}");
        assert!(json.contains("\\u007f\\u0085\\u202e"), "{json}");
        assert!(json.contains('\u{a0}') && json.contains('\u{1F600}'), "printable characters stay: {json}");
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["user"], text);
    }
}
