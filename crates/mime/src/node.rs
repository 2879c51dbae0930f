//! A part as the rest of the crate sees it: its real media type (read from the original
//! bytes, with the RFC 2045/2046 defaults), its shape in the IMAP tree, and accessors for the
//! fields and body bytes the writers need.

use std::borrow::Cow;

use mail_parser::parsers::MessageStream;
use mail_parser::HeaderValue;

use crate::codec::Cte;
use crate::fields::{first_token, unfold};
use crate::tree::{Field, FieldKind, Msg, Part};

/// A media type with lowercase type and subtype, parameters as mail-parser decodes them
/// (RFC 2231 continuations joined, charsets converted to UTF-8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ctype {
    pub ty: String,
    pub sub: String,
    pub params: Vec<(String, String)>,
}

impl Ctype {
    /// RFC 2045 §5.2: no (or an unusable) Content-Type means text/plain; charset=us-ascii.
    pub(crate) fn default_text() -> Ctype {
        Ctype { ty: "text".into(), sub: "plain".into(), params: vec![("charset".into(), "us-ascii".into())] }
    }

    /// RFC 2046 §5.1.5: inside multipart/digest the default is message/rfc822.
    fn default_message() -> Ctype {
        Ctype { ty: "message".into(), sub: "rfc822".into(), params: Vec::new() }
    }

    /// What a container that our limits stop us from descending into is reported as.
    pub(crate) fn opaque() -> Ctype {
        Ctype { ty: "application".into(), sub: "octet-stream".into(), params: Vec::new() }
    }

    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// RFC 2045 §5.1 token. A type that is not one (mail-parser keeps bytes such as NUL in it) is
/// an invalid Content-Type, which means the default; this also keeps what we decide on (is it
/// text? message/rfc822?) identical to what the wire shows.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x21..0x7f).contains(&b) && !b"()<>@,;:\\\"/[]?=".contains(&b))
}

/// What a node is, once the real Content-Type and mail-parser's findings are put together.
pub(crate) enum Shape<'m> {
    Leaf,
    Multipart(&'m [usize]),
    Message,
}

/// A node of the tree: a real part, or the empty text/plain child we supply for a multipart
/// that has none (the BODYSTRUCTURE grammar needs at least one).
#[derive(Clone, Copy)]
pub(crate) struct NodeRef<'m, 'b> {
    pub msg: &'m Msg<'b>,
    /// `None` for the supplied empty child.
    pub part: Option<&'m Part>,
    pub ct: &'m Ctype,
    /// The IMAP part number.
    pub path: &'m [u32],
}

impl<'m, 'b> NodeRef<'m, 'b> {
    /// The last field of a kind, as mail-parser (and so the structure) uses it.
    pub(crate) fn last(&self, kind: FieldKind) -> Option<&'m Field> {
        self.part?.fields.iter().rev().find(|f| f.kind == kind)
    }

    /// The unfolded, trimmed value of the last field of a kind; `None` when absent or empty.
    pub(crate) fn value(&self, kind: FieldKind) -> Option<Vec<u8>> {
        let v = unfold(self.last(kind)?.raw_value(self.msg.buf));
        (!v.is_empty()).then_some(v)
    }

    /// The body, still transfer-encoded.
    pub(crate) fn body(&self) -> &'b [u8] {
        self.part.map_or(&[], |p| self.msg.slice(&p.body))
    }

    /// The part's MIME header section, blank line included.
    pub(crate) fn mime_header(&self) -> &'b [u8] {
        self.part.map_or(&[], |p| self.msg.slice(&p.header))
    }

    /// The Content-Transfer-Encoding token as written (empty when absent).
    pub(crate) fn cte_token(&self) -> Vec<u8> {
        self.value(FieldKind::Cte).map(|v| first_token(&v).to_vec()).unwrap_or_default()
    }

    /// The decoder for this part's transfer encoding; `None` when it is one we do not know.
    pub(crate) fn cte(&self) -> Option<Cte> {
        Cte::from_token(&self.cte_token())
    }

    /// The body with its transfer encoding removed (an unknown encoding is left as is).
    pub(crate) fn decoded_body(&self) -> Cow<'b, [u8]> {
        match self.cte() {
            Some(Cte::Identity) | None => Cow::Borrowed(self.body()),
            Some(cte) => Cow::Owned(cte.decode(self.body())),
        }
    }
}

impl<'b> Msg<'b> {
    /// The real Content-Type of a part, read from the original bytes of the same field
    /// mail-parser used (the last one).
    pub(crate) fn ctype(&self, part: &Part, parent_is_digest: bool) -> Ctype {
        let field = part.fields.iter().rev().find(|f| f.kind == FieldKind::ContentType);
        let parsed = field.map(|f| MessageStream::new(f.raw_value(self.buf)).parse_content_type());
        let mut ct = match parsed {
            Some(HeaderValue::ContentType(ct)) if is_token(&ct.c_type) => {
                let sub = match ct.c_subtype.as_deref() {
                    Some(sub) if is_token(sub) => sub.to_string(),
                    // mail-parser treats "multipart" alone as a multipart; so do we.
                    _ if ct.c_type == "multipart" => "mixed".to_string(),
                    _ => return self.default_ctype(parent_is_digest),
                };
                let params = ct
                    .attributes
                    .unwrap_or_default()
                    .into_iter()
                    .map(|a| (a.name.into_owned(), a.value.into_owned()))
                    .collect();
                Ctype { ty: ct.c_type.into_owned(), sub, params }
            }
            _ => return self.default_ctype(parent_is_digest),
        };
        if ct.ty == "text" && ct.param("charset").is_none() {
            ct.params.push(("charset".into(), "us-ascii".into()));
        }
        ct
    }

    fn default_ctype(&self, parent_is_digest: bool) -> Ctype {
        if parent_is_digest {
            Ctype::default_message()
        } else {
            Ctype::default_text()
        }
    }

    /// Puts the real type and mail-parser's structure together. A multipart without a usable
    /// boundary is text to mail-parser, and is reported as the RFC 2045 default.
    pub(crate) fn shape<'m>(&'m self, part: &'m Part, ct: Ctype) -> (Shape<'m>, Ctype) {
        if ct.ty == "multipart" {
            match &part.children {
                Some(children) => (Shape::Multipart(children), ct),
                None => (Shape::Leaf, Ctype::default_text()),
            }
        } else if ct.ty == "message" && ct.sub == "rfc822" {
            (Shape::Message, ct)
        } else {
            (Shape::Leaf, ct)
        }
    }
}
