//! One level of MIME structure, as mail-parser sees it, flattened into offsets we own.
//!
//! mail-parser follows message/rfc822 parts by itself, and two of its behaviours are unsafe on
//! hostile input (both measured with mail-parser 0.11.9):
//! - a base64 message/rfc822 part is decoded and parsed, then `into_owned()` copies the whole
//!   decoded buffer once for every message nested inside it: a 190 KB message holding a digest
//!   of 10,000 empty parts took 1.4 GB;
//! - inline message/rfc822 nesting has no depth limit, and dropping the nested `Message` tree
//!   recurses: 200,000 levels (6 MB) overflow the stack and abort the process.
//!
//! So each message level is parsed from a copy in which the subtypes `rfc822`, `global` and
//! `digest` are made unrecognisable (same length, so every offset stays valid): mail-parser then
//! never builds a nested message, and we descend into message/rfc822 parts ourselves, under our
//! own depth and part limits (see `walk`). All header values are read from the original bytes.

use std::ops::Range;

use mail_parser::{HeaderName, MessageParser, PartType};

/// Header fields this crate reads, classified with mail-parser's own name matching so that we
/// pick the same Content-Type and Content-Transfer-Encoding it based the structure on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldKind {
    ContentType,
    Cte,
    Disposition,
    Id,
    Description,
    Language,
    Location,
    From,
    Sender,
    ReplyTo,
    To,
    Cc,
    Bcc,
    Date,
    Subject,
    MessageId,
    InReplyTo,
    Other,
}

impl FieldKind {
    fn of(name: &HeaderName<'_>) -> FieldKind {
        match name {
            HeaderName::ContentType => FieldKind::ContentType,
            HeaderName::ContentTransferEncoding => FieldKind::Cte,
            HeaderName::ContentDisposition => FieldKind::Disposition,
            HeaderName::ContentId => FieldKind::Id,
            HeaderName::ContentDescription => FieldKind::Description,
            HeaderName::ContentLanguage => FieldKind::Language,
            HeaderName::ContentLocation => FieldKind::Location,
            HeaderName::From => FieldKind::From,
            HeaderName::Sender => FieldKind::Sender,
            HeaderName::ReplyTo => FieldKind::ReplyTo,
            HeaderName::To => FieldKind::To,
            HeaderName::Cc => FieldKind::Cc,
            HeaderName::Bcc => FieldKind::Bcc,
            HeaderName::Date => FieldKind::Date,
            HeaderName::Subject => FieldKind::Subject,
            HeaderName::MessageId => FieldKind::MessageId,
            HeaderName::InReplyTo => FieldKind::InReplyTo,
            _ => FieldKind::Other,
        }
    }
}

/// One header field, as offsets into the message buffer.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    pub kind: FieldKind,
    /// First byte of the field name.
    pub start: usize,
    /// First byte after the colon.
    pub value: usize,
    /// After the line break that ends the field (folded lines included).
    pub end: usize,
}

impl Field {
    /// The name as written, without the whitespace some senders put before the colon.
    pub(crate) fn name<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        let raw = buf.get(self.start..self.value.saturating_sub(1)).unwrap_or_default();
        let end = raw.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(0, |p| p + 1);
        raw.get(..end).unwrap_or_default()
    }

    pub(crate) fn raw_value<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        buf.get(self.value..self.end).unwrap_or_default()
    }

    /// The whole field, name to final line break.
    pub(crate) fn whole<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        buf.get(self.start..self.end).unwrap_or_default()
    }
}

#[derive(Debug)]
pub(crate) struct Part {
    /// The part's own header section, blank line included.
    pub header: Range<usize>,
    pub body: Range<usize>,
    pub fields: Vec<Field>,
    /// Children (indexes into `Msg::parts`) when mail-parser found this to be a multipart with
    /// a usable boundary; may be empty.
    pub children: Option<Vec<usize>>,
}

/// One message: its bytes and its parts (index 0 is the root, whose header is the message
/// header). No parts at all means mail-parser found neither a header field nor a blank line;
/// such a message is treated as all header and no body.
#[derive(Debug)]
pub(crate) struct Msg<'b> {
    pub buf: &'b [u8],
    pub parts: Vec<Part>,
}

impl<'b> Msg<'b> {
    pub(crate) fn parse(buf: &'b [u8]) -> Msg<'b> {
        let copy = neutralise(buf);
        let Some(parsed) = MessageParser::default().parse(&copy) else {
            return Msg { buf, parts: Vec::new() };
        };
        let len = buf.len();
        let clamp = |v: u32, lo: usize| (v as usize).clamp(lo, len);
        let count = parsed.parts.len();
        let mut parts = Vec::with_capacity(count);
        for (index, p) in parsed.parts.iter().enumerate() {
            let header_start = if index == 0 { 0 } else { clamp(p.offset_header, 0) };
            let body_start = clamp(p.offset_body, header_start);
            let body_end = if index == 0 { len } else { clamp(p.offset_end, body_start) };
            let fields = p
                .headers
                .iter()
                .map(|h| {
                    let start = clamp(h.offset_field, 0);
                    let value = clamp(h.offset_start, start);
                    Field { kind: FieldKind::of(&h.name), start, value, end: clamp(h.offset_end, value) }
                })
                .collect();
            // Children always come after their parent in mail-parser's list; insisting on it
            // rules out cycles whatever the parser hands back.
            let children = match &p.body {
                PartType::Multipart(ids) => {
                    Some(ids.iter().map(|&id| id as usize).filter(|&id| id > index && id < count).collect())
                }
                _ => None,
            };
            parts.push(Part { header: header_start..body_start, body: body_start..body_end, fields, children });
        }
        Msg { buf, parts }
    }

    /// Where the body starts: the length of the header section, blank line included.
    pub(crate) fn header_end(&self) -> usize {
        self.parts.first().map_or(self.buf.len(), |p| p.body.start)
    }

    pub(crate) fn header(&self) -> &'b [u8] {
        self.buf.get(..self.header_end()).unwrap_or_default()
    }

    pub(crate) fn text(&self) -> &'b [u8] {
        self.buf.get(self.header_end()..).unwrap_or_default()
    }

    /// The top-level header fields.
    pub(crate) fn fields(&self) -> &[Field] {
        self.parts.first().map_or(&[], |p| p.fields.as_slice())
    }

    /// The first field of a kind (what the envelope shows).
    pub(crate) fn first(&self, kind: FieldKind) -> Option<&Field> {
        self.fields().iter().find(|f| f.kind == kind)
    }

    pub(crate) fn part(&self, idx: usize) -> Option<&Part> {
        self.parts.get(idx)
    }

    pub(crate) fn slice(&self, range: &Range<usize>) -> &'b [u8] {
        self.buf.get(range.clone()).unwrap_or_default()
    }
}

/// Hides the three subtypes that make mail-parser recurse (message/rfc822, message/global,
/// multipart/digest whose bare parts default to message/rfc822) by replacing the last letter of
/// every occurrence, case-insensitively, with `_`. A Content-Type subtype is a contiguous
/// token, so no spelling of it survives; boundaries containing one of the words change the
/// same way in the header and in the delimiter lines (no word can overlap another or itself),
/// so they still match.
fn neutralise(buf: &[u8]) -> Vec<u8> {
    const WORDS: [&[u8; 6]; 3] = [b"rfc822", b"global", b"digest"];
    let mut copy = buf.to_vec();
    let mut i = 0;
    while let Some(window) = copy.get(i..i + 6) {
        if WORDS.iter().any(|w| window.eq_ignore_ascii_case(*w)) {
            if let Some(last) = copy.get_mut(i + 5) {
                *last = b'_';
            }
            i += 6;
        } else {
            i += 1;
        }
    }
    copy
}
