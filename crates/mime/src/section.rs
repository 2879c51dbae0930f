//! BODY[section] (RFC 9051 §6.4.5) and BINARY[section] (RFC 3516): find the part by number
//! with the same walk that numbered it in BODYSTRUCTURE, then cut the bytes.

use crate::node::NodeRef;
use crate::tree::Msg;
use crate::walk::{Flow, Visitor, Walker};
use crate::{Section, SectionText, UnknownEncoding};

/// What is wanted from the part once found.
enum Want<'s> {
    Body(Option<&'s SectionText>),
    Binary,
}

struct Finder<'s> {
    target: &'s [u32],
    want: Want<'s>,
    /// Set once the target has been met (the inner `None` says the specifier does not apply).
    found: Option<Option<Result<Vec<u8>, UnknownEncoding>>>,
}

impl Finder<'_> {
    fn hit(&mut self, node: &NodeRef<'_, '_>, inner: Option<&Msg<'_>>) -> Flow {
        if node.path != self.target {
            return Flow::Continue;
        }
        let result = match &self.want {
            Want::Binary => Some(match node.cte() {
                Some(cte) => Ok(cte.decode(node.body())),
                None => Err(UnknownEncoding),
            }),
            Want::Body(None) => Some(Ok(node.body().to_vec())),
            Want::Body(Some(SectionText::Mime)) => Some(Ok(node.mime_header().to_vec())),
            // HEADER, HEADER.FIELDS, TEXT after a part number need a message/rfc822 part.
            Want::Body(Some(text)) => inner.map(|msg| Ok(message_text(msg, text))),
        };
        self.found = Some(result);
        Flow::Stop
    }
}

impl Visitor for Finder<'_> {
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
    let top = Msg::parse(raw);
    if spec.part.is_empty() {
        return match &spec.text {
            None => Some(raw.to_vec()),
            // MIME names a part's own header; the message as a whole has none.
            Some(SectionText::Mime) => None,
            Some(text) => Some(message_text(&top, text)),
        };
    }
    let mut finder = Finder { target: &spec.part, want: Want::Body(spec.text.as_ref()), found: None };
    Walker::new(raw.len()).walk(&top, &mut finder);
    finder.found.flatten().and_then(Result::ok)
}

pub(crate) fn binary(raw: &[u8], part: &[u32]) -> Result<Option<Vec<u8>>, UnknownEncoding> {
    if part.is_empty() {
        // The message as a whole has no transfer encoding of its own.
        return Ok(Some(raw.to_vec()));
    }
    let top = Msg::parse(raw);
    let mut finder = Finder { target: part, want: Want::Binary, found: None };
    Walker::new(raw.len()).walk(&top, &mut finder);
    finder.found.flatten().transpose()
}

/// HEADER, HEADER.FIELDS (.NOT) and TEXT of one message.
fn message_text(msg: &Msg<'_>, text: &SectionText) -> Vec<u8> {
    match text {
        SectionText::Header => msg.header().to_vec(),
        SectionText::Text => msg.text().to_vec(),
        SectionText::HeaderFields(names) => header_fields(msg, names, true),
        SectionText::HeaderFieldsNot(names) => header_fields(msg, names, false),
        // Only reachable through `section` with an empty part, which answers None first.
        SectionText::Mime => Vec::new(),
    }
}

/// The fields whose name is (or, with `keep == false`, is not) in `names`, each complete with
/// its folded lines, in message order, then the blank line.
fn header_fields(msg: &Msg<'_>, names: &[String], keep: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for field in msg.fields() {
        let name = field.name(msg.buf);
        let listed = names.iter().any(|n| n.as_bytes().eq_ignore_ascii_case(name));
        if listed == keep {
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
