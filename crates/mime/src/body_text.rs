//! The text SEARCH BODY and TEXT match (RFC 9051 §6.4.4): every text/* leaf of a message,
//! transfer-decoded and converted to UTF-8 by mail-parser's charset tables, leaves joined by a
//! newline. It is produced a window at a time, so that searching a message holds its raw
//! bytes and a window of text, not the three or four whole copies that decoding, converting,
//! joining and lower-casing used to make (issue 13, item 1: SEARCH BODY over a mailbox of
//! large messages).
//!
//! [`body_text`] collects the windows (so the tests of the whole text test the windows too),
//! [`body_contains`] lower-cases and searches them as they come and stops once every needle is
//! found. Windows are cut where cutting changes nothing:
//! - the transfer encoding: base64 anywhere (the quantum in progress is carried over),
//!   quoted-printable just after a line feed (it decodes line by line), identity anywhere;
//! - the decoded bytes: just after a line feed, which ends a character in every charset that
//!   reads "a\n" as "a\n", and ends the context `str::to_lowercase` looks at for a final sigma;
//!   UTF-8 text without a line feed for [`LONG_LINE`] windows is cut before a byte that starts
//!   a character (exact but for a Σ at the cut); other charsets (UTF-16) are converted whole.
//!
//! A match across two windows is found by keeping the last bytes of lower-cased text, one
//! fewer than the longest needle has.

use mail_parser::decoders::charsets::map::charset_decoder;

use crate::codec::{Base64Decoder, Cte};
use crate::node::NodeRef;
use crate::tree::Msg;
use crate::walk::{Flow, Visitor, Walker};

/// Bytes of decoded text handed over at a time.
const WINDOW: usize = 64 * 1024;
/// UTF-8 text goes this many windows without a line feed before it is cut elsewhere.
const LONG_LINE: usize = 4;

/// The decoded text of every text/* part, concatenated; see [`crate::body_text`].
pub(crate) fn body_text(raw: &[u8]) -> String {
    body_text_in_windows(raw, WINDOW)
}

fn body_text_in_windows(raw: &[u8], window: usize) -> String {
    let mut out = String::new();
    walk_text(raw, window, &mut |piece| {
        out.push_str(piece);
        Flow::Continue
    });
    out
}

/// For each of `needles` (lower-cased with `str::to_lowercase`), whether the body text,
/// lower-cased, holds it; see [`crate::body_contains`].
pub(crate) fn body_contains(raw: &[u8], needles: &[&str]) -> Vec<bool> {
    body_contains_in_windows(raw, needles, WINDOW)
}

fn body_contains_in_windows(raw: &[u8], needles: &[&str], window: usize) -> Vec<bool> {
    let mut found: Vec<bool> = needles.iter().map(|n| n.is_empty()).collect();
    let mut left = found.iter().filter(|f| !**f).count();
    if left == 0 {
        return found;
    }
    let keep = needles.iter().map(|n| n.len()).max().unwrap_or(0).saturating_sub(1);
    // The lower-cased text still to search: the last `keep` bytes of what came before, then
    // the new window.
    let mut text = String::new();
    walk_text(raw, window, &mut |piece| {
        text.push_str(&piece.to_lowercase());
        for (needle, found) in needles.iter().zip(&mut found) {
            if !*found && text.contains(needle) {
                *found = true;
                left -= 1;
            }
        }
        if left == 0 {
            return Flow::Stop;
        }
        let mut start = text.len().saturating_sub(keep);
        while !text.is_char_boundary(start) {
            start += 1;
        }
        text.drain(..start);
        Flow::Continue
    });
    found
}

/// Hands the body text to `sink` in pieces of about `window` bytes, in order, until it says
/// stop.
fn walk_text(raw: &[u8], window: usize, sink: &mut dyn FnMut(&str) -> Flow) {
    let msg = Msg::parse(raw);
    let mut texts = TextLeaves { window: window.max(1), sink, any: false };
    Walker::new(raw.len()).walk(&msg, &mut texts);
}

struct TextLeaves<'s> {
    window: usize,
    sink: &'s mut dyn FnMut(&str) -> Flow,
    /// Whether any text was handed over: the next leaf's text starts with a newline.
    any: bool,
}

impl Visitor for TextLeaves<'_> {
    fn leaf(&mut self, node: &NodeRef<'_, '_>) -> Flow {
        if node.ct.ty != "text" {
            return Flow::Continue;
        }
        let mut first = true;
        let any = &mut self.any;
        let sink = &mut *self.sink;
        leaf_text(node, self.window, &mut |piece| {
            if piece.is_empty() {
                return Flow::Continue;
            }
            if std::mem::take(&mut first) && std::mem::replace(any, true) && sink("\n") == Flow::Stop {
                return Flow::Stop;
            }
            sink(piece)
        })
    }
    fn multipart_start(&mut self, _node: &NodeRef<'_, '_>) -> Flow {
        Flow::Continue
    }
    fn multipart_end(&mut self, _node: &NodeRef<'_, '_>) -> Flow {
        Flow::Continue
    }
    fn message_start(&mut self, _node: &NodeRef<'_, '_>, _inner: &Msg<'_>) -> Flow {
        Flow::Continue
    }
    fn message_end(&mut self, _node: &NodeRef<'_, '_>, _inner: &Msg<'_>) -> Flow {
        Flow::Continue
    }
}

/// One text leaf's text, a window at a time.
fn leaf_text(node: &NodeRef<'_, '_>, window: usize, sink: &mut dyn FnMut(&str) -> Flow) -> Flow {
    let decoder = node.ct.param("charset").and_then(charset_decoder);
    let mut text = TextWindows {
        window,
        decoder,
        // A charset that reads a line feed as a line feed can be cut after one.
        line_safe: decoder.is_none_or(|decode| decode(b"a\n") == "a\n"),
        pending: Vec::new(),
        sink,
    };
    let body = node.body();
    let mut base64 = Base64Decoder::default();
    let mut rest = body;
    while !rest.is_empty() {
        let mut cut = window.min(rest.len());
        if node.cte() == Some(Cte::QuotedPrintable) {
            // Just after a line feed: quoted-printable decodes line by line.
            cut = rest[cut - 1..].iter().position(|&b| b == b'\n').map_or(rest.len(), |p| cut + p);
        }
        let (piece, after) = rest.split_at(cut);
        rest = after;
        match node.cte() {
            Some(Cte::Base64) => base64.feed(piece, &mut text.pending),
            Some(Cte::QuotedPrintable) => text.pending.extend_from_slice(&crate::codec::qp_decode(piece)),
            Some(Cte::Identity) | None => text.pending.extend_from_slice(piece),
        }
        if text.flush(false) == Flow::Stop {
            return Flow::Stop;
        }
    }
    base64.finish(&mut text.pending);
    text.flush(true)
}

/// Decoded bytes of one leaf, converted to text and handed over a window at a time.
struct TextWindows<'s> {
    window: usize,
    decoder: Option<mail_parser::decoders::charsets::DecoderFnc>,
    line_safe: bool,
    pending: Vec<u8>,
    sink: &'s mut dyn FnMut(&str) -> Flow,
}

impl TextWindows<'_> {
    /// Hands over what may be cut off `pending` (all of it at the leaf's `end`).
    fn flush(&mut self, end: bool) -> Flow {
        while !self.pending.is_empty() {
            let cut = if end {
                self.pending.len()
            } else if self.pending.len() < self.window || !self.line_safe {
                return Flow::Continue;
            } else if let Some(line_end) = self.pending.iter().rposition(|&b| b == b'\n') {
                line_end + 1
            } else if self.decoder.is_none() && self.pending.len() >= LONG_LINE * self.window {
                // Before the last byte that starts a character (or is not UTF-8 at all): the
                // bytes after it are converted with the next window, as they would be whole.
                let from = self.pending.len().saturating_sub(4);
                match (from..self.pending.len()).rev().find(|&i| self.pending[i] & 0xc0 != 0x80) {
                    Some(0) | None => self.pending.len(),
                    Some(i) => i,
                }
            } else {
                return Flow::Continue;
            };
            let rest = self.pending.split_off(cut);
            let bytes = std::mem::replace(&mut self.pending, rest);
            let flow = match self.decoder {
                Some(decode) => (self.sink)(&decode(&bytes)),
                None => (self.sink)(&String::from_utf8_lossy(&bytes)),
            };
            if flow == Flow::Stop {
                return Flow::Stop;
            }
        }
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What SEARCH matched before windows: the whole text, lower-cased.
    fn whole(raw: &[u8], needle: &str) -> bool {
        body_text_in_windows(raw, usize::MAX).to_lowercase().contains(needle)
    }

    fn messages() -> Vec<Vec<u8>> {
        let long_line = "x".repeat(300) + "Ωmega needle Σ end";
        let latin1: Vec<u8> =
            b"Content-Type: text/plain; charset=iso-8859-1\r\n\r\ncaf\xe9 cr\xe8me\r\nna\xefve\r\n".to_vec();
        let mut messages = vec![
            b"Subject: plain\r\n\r\nHello World\r\nsecond line\r\n".to_vec(),
            format!("Subject: long\r\n\r\n{long_line}{long_line}\r\nΣΣ aΣ Σa\r\n").into_bytes(),
            latin1,
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n--b\r\n\
              Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nbm90IHRleHQ=\r\n--b\r\n\
              Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p>caf=C3=A9 =\r\n\
              soft</p>  \r\nnext=3Dline\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n\
              R3LDvMOfZSBhdXMgTcO8bmNoZW4K\r\nZW5kZQ==\r\n--b--\r\n"
                .to_vec(),
            b"Content-Type: text/plain; charset=utf-16le\r\n\r\nh\0i\0 \0t\0h\0e\0r\0e\0".to_vec(),
            b"Content-Type: text/plain; charset=utf-8\r\n\r\nbad \xe2\x82 bytes \xff\xfe and \xe2\x82\xac euro\r\n".to_vec(),
            b"Content-Type: text/plain; charset=shift_jis\r\n\r\n\x82\xb1\x82\xf1\x82\xc9\x82\xbf\x82\xcd\r\nline two\r\n".to_vec(),
            b"Content-Type: multipart/alternative; boundary=q\r\n\r\n--q\r\nContent-Type: text/plain\r\n\r\n\r\n--q\r\n\
              Content-Type: text/plain\r\n\r\nafter an empty part\r\n--q--\r\n"
                .to_vec(),
        ];
        let encoded = crate::codec::base64_encode("Grüße, Σίσυφος!\n".repeat(40).as_bytes());
        messages.push(
            format!(
                "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{encoded}\r\n"
            )
            .into_bytes(),
        );
        messages
    }

    /// Cut into windows of every small size, the text is the whole text, and every needle is
    /// found as in the whole text lower-cased, across windows and across parts.
    #[test]
    fn windows_add_up_to_the_whole() {
        let needles = [
            "",
            "hello world",
            "d\r\nsec",
            "needle σ end",
            "σσ aσ σa",
            "café crème",
            "naïve",
            "part\r\n\n<p>",
            "not text",
            "café soft",
            "next=line",
            "grüße aus münchen\nende",
            "h\u{0}",
            "hi there",
            "\u{fffd} bytes \u{fffd}\u{fffd} and €",
            "こんにちは\r\nline",
            "\nafter an empty",
            "σίσυφος!\ngrüße",
            "absent",
        ];
        let mut matched = 0;
        for raw in messages() {
            let text = body_text_in_windows(&raw, usize::MAX);
            for window in [1, 2, 3, 5, 7, 16, 100, WINDOW] {
                assert_eq!(body_text_in_windows(&raw, window), text, "window {window}");
                let found = body_contains_in_windows(&raw, &needles, window);
                for (needle, found) in needles.iter().zip(found) {
                    assert_eq!(found, whole(&raw, needle), "{needle:?} in {text:?}, window {window}");
                    matched += usize::from(found);
                }
            }
        }
        assert!(matched > 100, "the cases must include matches ({matched})");
        assert_eq!(body_text(&messages()[4]), "hi there");
    }

    /// A text part of tens of MiB is searched without its text made whole: what the search
    /// holds beyond the message stays within a few windows (checked by the sizes it hands
    /// over), and it stops at the first window that has every needle.
    #[test]
    fn a_large_part_is_searched_a_window_at_a_time() {
        let line = "lorem ipsum dolor sit amet\r\n".repeat(4);
        let body = crate::codec::base64_encode(line.repeat(300_000).as_bytes());
        let raw = format!("Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n{body}\r\n");
        let mut largest = 0;
        let mut pieces = 0;
        walk_text(raw.as_bytes(), WINDOW, &mut |piece| {
            largest = largest.max(piece.len());
            pieces += 1;
            Flow::Continue
        });
        assert!(pieces > 100, "{pieces} pieces");
        assert!(largest <= 2 * WINDOW, "a piece of {largest} bytes");
        assert_eq!(body_contains(raw.as_bytes(), &["dolor sit", "absent"]), vec![true, false]);
        let mut seen = 0;
        walk_text(raw.as_bytes(), WINDOW, &mut |_| {
            seen += 1;
            Flow::Stop
        });
        assert_eq!(seen, 1, "stops when told");
    }
}
