//! One level of MIME structure: a message's header fields and its part tree, as byte offsets
//! into the message, found line by line the way Dovecot's message parser finds them, so that
//! BODYSTRUCTURE and part numbers agree with the server clients were tested against.
//!
//! Written here rather than taken from mail-parser because on malformed MIME the two disagree
//! with Dovecot (and with each other) in ways clients see as missing parts: mail-parser gives up
//! on a quoted boundary holding ":", treats a multipart without boundary lines as text, and
//! when an inner boundary is a prefix of an outer one ("a" inside "ab") it gives the outer
//! line to the inner multipart. The rules here:
//! - a header ends at its first empty line; a line starting with white space continues the
//!   field before it; a line without a colon is a field without a value;
//! - a line starting with "--" ends the current part when the rest of it starts with the
//!   boundary of an enclosing multipart; when several boundaries match, the longest wins
//!   (an exact match at once), and the parts inside the matched multipart end too; a boundary
//!   followed by "--" closes its multipart (what follows is its epilogue). This holds in a
//!   part's header as well, which then ends there, without a body;
//! - the line break before a boundary line belongs to the boundary (RFC 2046 §5.1.1);
//! - a multipart without a boundary parameter, or without any boundary line, has no parts.
//!
//! A message/rfc822 part is a leaf at this level; `walk` parses the message inside it as a
//! level of its own, which bounds the work per level and lets the walk limit the depth.

use std::ops::Range;

use crate::content;

/// Header fields this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldKind {
    ContentType,
    Cte,
    Disposition,
    Id,
    Description,
    Language,
    Location,
    MimeVersion,
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
    fn of(name: &[u8]) -> FieldKind {
        const NAMES: [(&[u8], FieldKind); 18] = [
            (b"content-type", FieldKind::ContentType),
            (b"content-transfer-encoding", FieldKind::Cte),
            (b"content-disposition", FieldKind::Disposition),
            (b"content-id", FieldKind::Id),
            (b"content-description", FieldKind::Description),
            (b"content-language", FieldKind::Language),
            (b"content-location", FieldKind::Location),
            (b"mime-version", FieldKind::MimeVersion),
            (b"from", FieldKind::From),
            (b"sender", FieldKind::Sender),
            (b"reply-to", FieldKind::ReplyTo),
            (b"to", FieldKind::To),
            (b"cc", FieldKind::Cc),
            (b"bcc", FieldKind::Bcc),
            (b"date", FieldKind::Date),
            (b"subject", FieldKind::Subject),
            (b"message-id", FieldKind::MessageId),
            (b"in-reply-to", FieldKind::InReplyTo),
        ];
        NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map_or(FieldKind::Other, |&(_, kind)| kind)
    }
}

/// One header field, as offsets into the message buffer.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    pub kind: FieldKind,
    /// First byte of the field name.
    pub start: usize,
    /// First byte after the colon (the end of the line for a field without one).
    pub value: usize,
    /// After the line break that ends the field (folded lines included).
    pub end: usize,
}

impl Field {
    /// The name as written, without the whitespace some senders put before the colon.
    pub(crate) fn name<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        let raw = buf.get(self.start..self.value).unwrap_or_default();
        let raw = raw.strip_suffix(b":").unwrap_or(raw);
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
    /// Children (indexes into `Msg::parts`, each after its parent) of a multipart; `None`
    /// for any other part.
    pub children: Option<Vec<usize>>,
}

/// One message: its bytes and its parts (index 0 is the root, whose header is the message
/// header). Never empty.
#[derive(Debug)]
pub(crate) struct Msg<'b> {
    pub buf: &'b [u8],
    pub parts: Vec<Part>,
}

/// Multipart levels whose boundaries are looked for; a multipart nested deeper is read as a
/// leaf (the walk reports far shallower containers as opaque anyway). Also bounds the work per
/// boundary line.
const MAX_NESTING: usize = 100;
/// Parts one level may have; past it, boundary lines are no longer looked for.
const MAX_PARTS: usize = crate::walk::MAX_PARTS;

/// A multipart whose boundary is being looked for.
struct Open {
    part: usize,
    boundary: Vec<u8>,
}

/// How many message/rfc822 levels below a part [`ends_in_markup`] looks into. Each look parses
/// that level's bytes again, so a bound keeps a hostile nesting of messages in multiparts in
/// messages linear in the message size (at most this many extra passes per level); real mail
/// nests one or two levels.
const MARKUP_LOOKAHEAD: usize = 3;

/// RFC 2046 §5.1.1: a boundary has at most 70 characters. Dovecot compares only those, so
/// longer boundaries that share them are one boundary; so are they here.
const MAX_BOUNDARY: usize = 70;

/// Whether the last line of `buf`, a message nested `depth` levels deep, is markup (a header
/// line, the blank line ending a header, a boundary line) rather than content: then the line
/// break before the boundary that ends the part holding `buf` is the part's own, as Dovecot,
/// which reads nested messages in one pass, counts it (a message/rfc822 part that is all header,
/// or ends with its multipart's close delimiter).
fn ends_in_markup(buf: &[u8], depth: usize, lookahead: usize) -> bool {
    if depth > crate::walk::MAX_DEPTH || lookahead == 0 {
        return false;
    }
    let mut parser = Parser::new(buf, depth, lookahead - 1);
    parser.run_lines();
    if parser.markup {
        return true;
    }
    // Content of a message/rfc822 leaf at this level: what ends that message decides.
    let last = parser.current();
    let message = last != 0 && parser.parts[last].children.is_none() && parser.is_message(last);
    message && ends_in_markup(&buf[parser.parts[last].body.start..], depth + 1, lookahead - 1)
}

impl<'b> Msg<'b> {
    pub(crate) fn parse(buf: &'b [u8]) -> Msg<'b> {
        Msg::parse_at(buf, 0)
    }

    /// A message nested `depth` message/rfc822 levels deep (see [`ends_in_markup`]).
    pub(crate) fn parse_at(buf: &'b [u8], depth: usize) -> Msg<'b> {
        let mut parser = Parser::new(buf, depth, MARKUP_LOOKAHEAD);
        parser.run();
        Msg { buf, parts: parser.parts }
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

    /// Every top-level field of a kind, in header order.
    pub(crate) fn all(&self, kind: FieldKind) -> impl Iterator<Item = &Field> {
        self.fields().iter().filter(move |f| f.kind == kind)
    }

    pub(crate) fn part(&self, idx: usize) -> Option<&Part> {
        self.parts.get(idx)
    }

    pub(crate) fn slice(&self, range: &Range<usize>) -> &'b [u8] {
        self.buf.get(range.clone()).unwrap_or_default()
    }
}

fn new_part(start: usize) -> Part {
    Part { header: start..start, body: start..start, fields: Vec::new(), children: None }
}

struct Parser<'b> {
    buf: &'b [u8],
    /// message/rfc822 levels above this one.
    depth: usize,
    /// How much deeper [`ends_in_markup`] may still look.
    lookahead: usize,
    parts: Vec<Part>,
    /// The parts being read, from the root to the current one; none of them has ended.
    chain: Vec<usize>,
    /// The multipart parts in `chain` whose boundaries are looked for, outermost first.
    open: Vec<Open>,
    /// Whether the current (last in `chain`) part is still in its header.
    in_header: bool,
    /// Whether the last line read was markup (see [`ends_in_markup`]).
    markup: bool,
}

impl<'b> Parser<'b> {
    fn new(buf: &'b [u8], depth: usize, lookahead: usize) -> Parser<'b> {
        Parser {
            buf,
            depth,
            lookahead,
            parts: vec![new_part(0)],
            chain: vec![0],
            open: Vec::new(),
            in_header: true,
            markup: false,
        }
    }

    fn current(&self) -> usize {
        self.chain.last().copied().unwrap_or(0)
    }

    /// Whether `index` is a message/rfc822 part (by its Content-Type, or in a digest by
    /// default).
    fn is_message(&self, index: usize) -> bool {
        let part = &self.parts[index];
        match part.fields.iter().find(|f| f.kind == FieldKind::ContentType) {
            Some(f) => content::content_type(f.raw_value(self.buf))
                .is_some_and(|(ty, sub, _)| ty == "message" && sub == "rfc822"),
            None => {
                let parent = self.chain.iter().rev().skip_while(|&&p| p != index).nth(1);
                parent.is_some_and(|&p| self.subtype_is(p, "digest"))
            }
        }
    }

    fn subtype_is(&self, index: usize, subtype: &str) -> bool {
        let ct = self.parts[index].fields.iter().find(|f| f.kind == FieldKind::ContentType);
        ct.and_then(|f| content::content_type(f.raw_value(self.buf))).is_some_and(|(_, sub, _)| sub == subtype)
    }

    fn run(&mut self) {
        self.run_lines();
        // The end of the message ends every part still open.
        let end = self.buf.len();
        if self.in_header {
            self.end_header(self.current(), end, end);
            self.in_header = false;
        }
        for i in std::mem::take(&mut self.chain) {
            let part = &mut self.parts[i];
            part.body.end = end.max(part.body.start);
        }
    }

    /// Reads every line, leaving the parts still open at the end as they are.
    fn run_lines(&mut self) {
        let buf = self.buf;
        let mut pos = 0;
        while pos < buf.len() {
            let next = buf[pos..].iter().position(|&b| b == b'\n').map_or(buf.len(), |i| pos + i + 1);
            let line = &buf[pos..next];
            let content = line.strip_suffix(b"\n").unwrap_or(line);
            let content = content.strip_suffix(b"\r").unwrap_or(content);
            if let Some(rest) = content.strip_prefix(b"--") {
                if let Some((k, closing)) = self.boundary(rest) {
                    self.on_boundary(pos, next, k, closing);
                    self.markup = true;
                    pos = next;
                    continue;
                }
            }
            self.markup = self.in_header;
            if self.in_header {
                self.header_line(pos, next, content);
            }
            pos = next;
        }
    }

    /// The enclosing multipart whose boundary `rest` (the line after "--") starts with: the
    /// longest such boundary, an exact one at once; with whether it is the close delimiter.
    fn boundary(&self, rest: &[u8]) -> Option<(usize, bool)> {
        let mut best: Option<usize> = None;
        for (k, open) in self.open.iter().enumerate().rev() {
            let b = &open.boundary;
            if rest.starts_with(b) && best.is_none_or(|j| self.open[j].boundary.len() < b.len()) {
                best = Some(k);
                if rest.len() == b.len() || &rest[b.len()..] == b"--" {
                    break;
                }
            }
        }
        best.map(|k| (k, rest[self.open[k].boundary.len()..].starts_with(b"--")))
    }

    /// A boundary of `open[k]` at the line `pos..next`: the parts inside that multipart end
    /// (their bodies before the line break preceding the line), and a new part begins, or
    /// the multipart's epilogue.
    fn on_boundary(&mut self, pos: usize, next: usize, k: usize, closing: bool) {
        let multipart = self.open[k].part;
        let line_break = if pos >= 2 && &self.buf[pos - 2..pos] == b"\r\n" {
            2
        } else {
            usize::from(pos >= 1 && self.buf[pos - 1] == b'\n')
        };
        // The line break before the boundary is the boundary's, unless markup took it.
        let current = self.current();
        let keeps = self.markup
            || (current != multipart
                && !self.in_header
                && self.parts[current].children.is_none()
                && self.is_message(current)
                && ends_in_markup(&self.buf[self.parts[current].body.start..pos], self.depth + 1, self.lookahead));
        let cut = if keeps { pos } else { pos - line_break };
        while let Some(&inner) = self.chain.last() {
            if inner == multipart {
                break;
            }
            if self.in_header {
                // The boundary ends this header: a part without a body.
                self.end_header(inner, pos, pos);
                self.in_header = false;
            }
            let part = &mut self.parts[inner];
            part.body.end = cut.max(part.body.start);
            self.chain.pop();
        }
        self.in_header = false;
        self.open.truncate(k + 1);
        if closing {
            self.open.pop();
            return; // The epilogue: body of `multipart`, in no part of its own.
        }
        if self.parts.len() >= MAX_PARTS {
            self.open.clear();
            return;
        }
        let child = self.parts.len();
        self.parts.push(new_part(next));
        if let Some(children) = self.parts[multipart].children.as_mut() {
            children.push(child);
        }
        self.chain.push(child);
        self.in_header = true;
    }

    fn header_line(&mut self, pos: usize, next: usize, content: &[u8]) {
        let current = self.current();
        if content.is_empty() {
            self.end_header(current, next, next);
            self.in_header = false;
            return;
        }
        let part = &mut self.parts[current];
        if matches!(content.first(), Some(b' ' | b'\t')) {
            if let Some(field) = part.fields.last_mut() {
                field.end = next;
                return;
            }
        }
        let value = content.iter().position(|&b| b == b':').map_or(pos + content.len(), |c| pos + c + 1);
        let mut field = Field { kind: FieldKind::Other, start: pos, value, end: next };
        field.kind = FieldKind::of(field.name(self.buf));
        part.fields.push(field);
    }

    /// The header of `part` ends at `header_end`, its body starting at `body_start`; a
    /// multipart starts looking for its boundary.
    fn end_header(&mut self, index: usize, header_end: usize, body_start: usize) {
        let part = &mut self.parts[index];
        part.header.end = header_end;
        part.body = body_start..body_start;
        let ct = part.fields.iter().find(|f| f.kind == FieldKind::ContentType);
        let parsed = ct.and_then(|f| content::content_type(f.raw_value(self.buf)));
        let Some((ty, _, params)) = parsed else { return };
        if ty != "multipart" {
            return;
        }
        part.children = Some(Vec::new());
        let boundary = params.into_iter().find(|(name, _)| name == "boundary").map(|(_, mut v)| {
            v.truncate(MAX_BOUNDARY);
            v
        });
        if let Some(boundary) = boundary.filter(|b| !b.is_empty()) {
            if self.open.len() < MAX_NESTING && self.parts.len() < MAX_PARTS {
                self.open.push(Open { part: index, boundary });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tree as nested (body text) and [children...] for a quick comparison.
    fn shape(msg: &Msg<'_>, i: usize) -> String {
        let part = &msg.parts[i];
        match &part.children {
            Some(children) => {
                format!("[{}]", children.iter().map(|&c| shape(msg, c)).collect::<Vec<_>>().join(" "))
            }
            None => format!("{:?}", String::from_utf8_lossy(msg.slice(&part.body))),
        }
    }

    fn parse(text: &str) -> String {
        let raw = text.replace('\n', "\r\n");
        shape(&Msg::parse(raw.as_bytes()), 0)
    }

    #[test]
    fn headers_and_bodies() {
        let raw = b"Subject: a\r\n b\r\nNo colon here\r\n cont\r\nFrom : x@y\r\n\r\nbody\r\n";
        let msg = Msg::parse(raw);
        let names: Vec<_> = msg.fields().iter().map(|f| String::from_utf8_lossy(f.name(raw)).into_owned()).collect();
        assert_eq!(names, ["Subject", "No colon here", "From"]);
        assert_eq!(msg.fields()[0].raw_value(raw), b" a\r\n b\r\n");
        assert_eq!(msg.fields()[2].kind, FieldKind::From);
        assert_eq!(msg.text(), b"body\r\n");
        // No blank line: all header.
        let msg = Msg::parse(b"just a line\nand another\n");
        assert_eq!((msg.fields().len(), msg.text()), (2, &b""[..]));
        assert_eq!(Msg::parse(b"").parts.len(), 1);
    }

    #[test]
    fn boundaries_as_dovecot_reads_them() {
        // The line break before a boundary belongs to it; preamble and epilogue are nobody's.
        assert_eq!(
            parse("Content-Type: multipart/mixed; boundary=b\n\npre\n--b\n\none\ntwo\n--b \n\nthree\n--b--\nepi\n"),
            r#"["one\r\ntwo" "three"]"#
        );
        // A quoted boundary with ":"; boundary lines ending headers (parts without a body).
        assert_eq!(
            parse("Content-Type: multipart/mixed; boundary=\":foo\"\n\n--:foo\n--:foo\nContent-Type: text/plain\n--:foo\nX: y\n--:foo--\n"),
            r#"["" "" ""]"#
        );
        // The longest boundary wins: "--ab" is the outer one's, even inside "a".
        assert_eq!(
            parse("Content-Type: multipart/mixed; boundary=ab\n\n--ab\nContent-Type: multipart/mixed; boundary=a\n\n--ab\n\n--a\n\n"),
            r#"[[] "--a\r\n\r\n"]"#
        );
        // An inner multipart's boundary is only looked for once its header has ended.
        assert_eq!(
            parse("Content-Type: multipart/mixed; boundary=a\n\n--a\nContent-Type: multipart/mixed; boundary=ab\n--ab\n\n--ab--\n--a--\n"),
            r#"[[] "" ""]"#
        );
        // An outer boundary ends an unclosed inner multipart.
        assert_eq!(
            parse("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: multipart/alternative; boundary=c\n\n--c\n\nalt1\n--c\n\nalt2\n--b\n\nafter\n--b--\n"),
            r#"[["alt1" "alt2"] "after"]"#
        );
        // No boundary parameter, or no boundary line: a multipart without parts.
        assert_eq!(parse("Content-Type: multipart/mixed\n\n--x\n\nhello\n--x--\n"), "[]");
        assert_eq!(parse("Content-Type: multipart/mixed; boundary=ab\n\nbody\n"), "[]");
        // No close delimiter: the message's end ends everything.
        assert_eq!(parse("Content-Type: multipart/mixed; boundary=b\n\n--b\n\nlast"), r#"["last"]"#);
    }

    #[test]
    fn hostile_nesting_is_bounded() {
        let mut raw = String::new();
        for i in 0..500 {
            raw.push_str(&format!("Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n"));
        }
        let msg = Msg::parse(raw.as_bytes());
        fn depth(msg: &Msg<'_>, i: usize) -> usize {
            1 + msg.parts[i].children.iter().flatten().map(|&c| depth(msg, c)).max().unwrap_or(0)
        }
        assert!(depth(&msg, 0) <= MAX_NESTING + 2, "{}", depth(&msg, 0));
        let many = "Content-Type: multipart/mixed; boundary=b\n\n".to_string() + &"--b\n".repeat(20_000);
        assert!(Msg::parse(many.as_bytes()).parts.len() <= MAX_PARTS);
    }
}
