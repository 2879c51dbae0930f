//! BODY[section] (RFC 9051 §6.4.5) and BINARY[section] (RFC 3516): find the parts by number
//! with the same walk that numbered them in BODYSTRUCTURE, then say where their bytes are.
//!
//! [`locate`] answers every section one FETCH names in one parse of the message, and answers
//! with a byte range of the message wherever the bytes are the message's own (a part, its MIME
//! header, a header, a text, a part whose transfer encoding is the identity), so that FETCH can
//! send them from the store a piece at a time instead of copying them; only what has to be made
//! (HEADER.FIELDS, a decoded part, the parts of an encoded message/rfc822) is made, and no more
//! of it than a budget allows.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;

use crate::codec::Cte;
use crate::node::NodeRef;
use crate::tree::Msg;
use crate::walk::{Flow, Visitor, Walker};
use crate::{Section, SectionText};

/// What FETCH asks of a message's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// `BODY[section]`: the bytes as stored.
    Body(Section),
    /// `BINARY[part]`: the part's content with its transfer encoding undone.
    Binary(Vec<u32>),
}

/// Where the answer to a [`Wanted`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// These bytes of the message itself; `nul` says whether they hold a NUL (checked for
    /// BINARY only, which sends such data as a literal8; false for BODY).
    Range { range: Range<usize>, nul: bool },
    /// Bytes made from the message: HEADER.FIELDS, a decoded part.
    Bytes(Vec<u8>),
    /// No such section (NIL).
    Missing,
    /// BINARY of a part whose transfer encoding this server cannot undo.
    UnknownEncoding,
    /// Making the answer would take the bytes made for this message past the budget.
    TooLarge,
}

impl Found {
    /// The bytes, given the message; `None` when there are none.
    pub fn bytes<'a>(&'a self, raw: &'a [u8]) -> Option<&'a [u8]> {
        match self {
            Found::Range { range, .. } => raw.get(range.clone()),
            Found::Bytes(bytes) => Some(bytes),
            _ => None,
        }
    }
}

/// Where each of `wanted` is in `raw`, in one parse. Bytes made (not ranges) count against
/// `budget`; past it an answer is [`Found::TooLarge`].
pub fn locate(raw: &[u8], wanted: &[Wanted], budget: usize) -> Vec<Found> {
    let mut answers = Answers { raw, found: vec![None; wanted.len()], budget };
    let mut targets: BTreeMap<&[u32], Vec<usize>> = BTreeMap::new();
    let mut top: Option<Msg<'_>> = None;
    for (i, want) in wanted.iter().enumerate() {
        match want {
            // The message as a whole has no transfer encoding of its own.
            Wanted::Binary(part) if part.is_empty() => answers.range(i, raw, true),
            Wanted::Body(Section { part, text }) if part.is_empty() => match text {
                None => answers.range(i, raw, false),
                // MIME names a part's own header; the message as a whole has none.
                Some(SectionText::Mime) => answers.found[i] = Some(Found::Missing),
                Some(text) => {
                    let top = top.get_or_insert_with(|| Msg::parse(raw));
                    answers.message_text(i, top, text);
                }
            },
            Wanted::Body(Section { part, .. }) | Wanted::Binary(part) => {
                targets.entry(part.as_slice()).or_default().push(i)
            }
        }
    }
    if !targets.is_empty() {
        let top = top.unwrap_or_else(|| Msg::parse(raw));
        let mut finder = Finder { wanted, targets, answers: &mut answers };
        Walker::new(raw.len()).walk(&top, &mut finder);
    }
    answers.found.into_iter().map(|f| f.unwrap_or(Found::Missing)).collect()
}

struct Answers<'r> {
    raw: &'r [u8],
    found: Vec<Option<Found>>,
    /// What may still be made.
    budget: usize,
}

impl Answers<'_> {
    /// `bytes`, a slice of the message (a range of it) or of bytes decoded from it (made).
    fn range(&mut self, i: usize, bytes: &[u8], check_nul: bool) {
        let found = match range_in(self.raw, bytes) {
            Some(range) => Found::Range { range, nul: check_nul && bytes.contains(&0) },
            None => self.made(bytes.len(), || bytes.to_vec()),
        };
        self.found[i] = Some(found);
    }

    fn made(&mut self, len: usize, make: impl FnOnce() -> Vec<u8>) -> Found {
        if len > self.budget {
            return Found::TooLarge;
        }
        self.budget -= len;
        Found::Bytes(make())
    }

    /// HEADER, HEADER.FIELDS (.NOT) and TEXT of one message.
    fn message_text(&mut self, i: usize, msg: &Msg<'_>, text: &SectionText) {
        match text {
            SectionText::Header => self.range(i, msg.header(), false),
            SectionText::Text => self.range(i, msg.text(), false),
            SectionText::HeaderFields(names) | SectionText::HeaderFieldsNot(names) => {
                let keep = matches!(text, SectionText::HeaderFields(_));
                let len = header_fields_len(msg, names, keep);
                self.found[i] = Some(self.made(len, || header_fields(msg, names, keep)));
            }
            // Only `locate` deals with MIME at the top, where it is missing.
            SectionText::Mime => self.found[i] = Some(Found::Missing),
        }
    }
}

/// Where `part` is in `whole`, if it is a slice of it (bytes decoded from the message are not).
fn range_in(whole: &[u8], part: &[u8]) -> Option<Range<usize>> {
    if part.is_empty() {
        return Some(0..0);
    }
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= whole.len()).then_some(start..end)
}

/// The walk's visitor: answers the wanted sections whose part number each node has.
struct Finder<'w, 'a, 'r> {
    wanted: &'w [Wanted],
    /// Part numbers still to find, with the wanted sections that name them.
    targets: BTreeMap<&'w [u32], Vec<usize>>,
    answers: &'a mut Answers<'r>,
}

impl Finder<'_, '_, '_> {
    /// A node: the first met with a number answers for it (a message/rfc822 part comes before
    /// the root of the message inside it, which shares its number).
    fn hit(&mut self, node: &NodeRef<'_, '_>, inner: Option<&Msg<'_>>) -> Flow {
        let Some(indexes) = self.targets.remove(node.path) else { return Flow::Continue };
        for i in indexes {
            match &self.wanted[i] {
                Wanted::Binary(_) => match node.cte() {
                    Some(Cte::Identity) => self.answers.range(i, node.body(), true),
                    Some(cte) => {
                        let body = node.body();
                        // A decoding is never longer than what it decodes.
                        let found = self.answers.made(body.len(), || cte.decode(body));
                        self.answers.found[i] = Some(found);
                    }
                    None => self.answers.found[i] = Some(Found::UnknownEncoding),
                },
                Wanted::Body(section) => match (&section.text, inner) {
                    (None, _) => self.answers.range(i, node.body(), false),
                    (Some(SectionText::Mime), _) => self.answers.range(i, node.mime_header(), false),
                    // HEADER, HEADER.FIELDS, TEXT after a part number need a message/rfc822 part.
                    (Some(text), Some(msg)) => self.answers.message_text(i, msg, text),
                    (Some(_), None) => self.answers.found[i] = Some(Found::Missing),
                },
            }
        }
        if self.targets.is_empty() {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }
}

impl Visitor for Finder<'_, '_, '_> {
    fn leaf(&mut self, node: &NodeRef<'_, '_>) -> Flow {
        self.hit(node, None)
    }
    fn multipart_start(&mut self, node: &NodeRef<'_, '_>) -> Flow {
        self.hit(node, None)
    }
    fn multipart_end(&mut self, _node: &NodeRef<'_, '_>) -> Flow {
        Flow::Continue
    }
    fn message_start(&mut self, node: &NodeRef<'_, '_>, inner: &Msg<'_>) -> Flow {
        self.hit(node, Some(inner))
    }
    fn message_end(&mut self, _node: &NodeRef<'_, '_>, _inner: &Msg<'_>) -> Flow {
        Flow::Continue
    }
}

pub(crate) fn section(raw: &[u8], spec: &Section) -> Option<Vec<u8>> {
    let found = locate(raw, &[Wanted::Body(spec.clone())], usize::MAX).pop()?;
    found.bytes(raw).map(<[u8]>::to_vec)
}

pub(crate) fn binary(raw: &[u8], part: &[u32]) -> Result<Option<Vec<u8>>, crate::UnknownEncoding> {
    match locate(raw, &[Wanted::Binary(part.to_vec())], usize::MAX).pop() {
        Some(Found::UnknownEncoding) => Err(crate::UnknownEncoding),
        Some(found) => Ok(found.bytes(raw).map(<[u8]>::to_vec)),
        None => Ok(None),
    }
}

/// The names a HEADER.FIELDS list gives, lower-cased once: each field is then looked up, not
/// compared with every name (a list may hold a thousand).
fn name_set(names: &[String]) -> HashSet<Vec<u8>> {
    names.iter().map(|n| n.as_bytes().to_ascii_lowercase()).collect()
}

fn listed(set: &HashSet<Vec<u8>>, name: &[u8]) -> bool {
    set.contains(&name.to_ascii_lowercase())
}

/// The length of [`header_fields`], without making it.
fn header_fields_len(msg: &Msg<'_>, names: &[String], keep: bool) -> usize {
    let set = name_set(names);
    let mut len = 2;
    for field in msg.fields() {
        if listed(&set, field.name(msg.buf)) == keep {
            let whole = field.whole(msg.buf);
            len += whole.len() + if whole.ends_with(b"\n") { 0 } else { 2 };
        }
    }
    len
}

/// The fields whose name is (or, with `keep == false`, is not) in `names`, each complete with
/// its folded lines, in message order, then the blank line.
fn header_fields(msg: &Msg<'_>, names: &[String], keep: bool) -> Vec<u8> {
    let set = name_set(names);
    let mut out = Vec::new();
    for field in msg.fields() {
        if listed(&set, field.name(msg.buf)) == keep {
            let whole = field.whole(msg.buf);
            out.extend_from_slice(whole);
            if !whole.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: &[u8] = b"Subject: hi\r\nX-Long: a\r\n b\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n\
--x\r\nContent-Type: text/plain\r\n\r\nplain\r\n\
--x\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n\
--x\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nU3ViamVjdDogaW5uZXINCg0KaW5uZXIgYm9keQ==\r\n\
--x--\r\n";

    fn body(part: &[u32], text: Option<SectionText>) -> Wanted {
        Wanted::Body(Section { part: part.to_vec(), text })
    }

    /// Every section in one parse, as ranges of the message where the bytes are its own, and
    /// the same bytes `section` and `binary` give one at a time.
    #[test]
    fn sections_are_ranges_of_the_message_where_they_can_be() {
        let wanted = vec![
            body(&[], None),
            body(&[], Some(SectionText::Header)),
            body(&[], Some(SectionText::Text)),
            body(&[], Some(SectionText::HeaderFields(vec!["x-LONG".into(), "Nothing".into()]))),
            body(&[1], None),
            body(&[1], Some(SectionText::Mime)),
            body(&[2], None),
            Wanted::Binary(vec![2]),
            Wanted::Binary(vec![1]),
            body(&[3], Some(SectionText::Header)),
            body(&[3, 1], None),
            body(&[9], None),
            body(&[1], Some(SectionText::Text)),
            Wanted::Binary(vec![]),
        ];
        let found = locate(RAW, &wanted, usize::MAX);
        assert!(matches!(&found[0], Found::Range { range, .. } if *range == (0..RAW.len())));
        assert!(matches!(&found[4], Found::Range { .. }), "{:?}", found[4]);
        assert_eq!(found[4].bytes(RAW), Some(&b"plain"[..]));
        assert_eq!(found[3], Found::Bytes(b"X-Long: a\r\n b\r\n\r\n".to_vec()));
        assert_eq!(found[7], Found::Bytes(vec![0, 1, 2]), "decoded");
        assert!(matches!(&found[8], Found::Range { nul: false, .. }));
        // The parts of an encoded message/rfc822 are made from its decoded bytes.
        assert_eq!(found[9], Found::Bytes(b"Subject: inner\r\n\r\n".to_vec()));
        assert_eq!(found[10], Found::Bytes(b"inner body".to_vec()));
        assert_eq!((&found[11], &found[12]), (&Found::Missing, &Found::Missing));
        for (want, found) in wanted.iter().zip(&found) {
            let one = match want {
                Wanted::Body(s) => section(RAW, s),
                Wanted::Binary(p) => binary(RAW, p).unwrap(),
            };
            assert_eq!(found.bytes(RAW).map(<[u8]>::to_vec), one, "{want:?}");
        }
    }

    #[test]
    fn made_bytes_stay_within_the_budget() {
        let wanted = vec![Wanted::Binary(vec![2]), body(&[3, 1], None), body(&[1], None)];
        let found = locate(RAW, &wanted, 5);
        assert_eq!(found[0], Found::Bytes(vec![0, 1, 2]));
        assert_eq!(found[1], Found::TooLarge, "3 of 5 made, 10 more would not fit");
        assert!(matches!(found[2], Found::Range { .. }), "ranges cost nothing");
        let nul = b"Content-Type: text/plain\r\n\r\na\0b";
        assert!(matches!(locate(nul, &[Wanted::Binary(vec![])], 0)[0], Found::Range { nul: true, .. }));
        assert!(matches!(locate(nul, &[body(&[], None)], 0)[0], Found::Range { nul: false, .. }));
    }
}
