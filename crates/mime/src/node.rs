//! A part as the rest of the crate sees it: its real media type (read from the original
//! bytes, with the RFC 2045/2046 defaults), its shape in the IMAP tree, and accessors for the
//! fields and body bytes the writers need.

use std::borrow::Cow;

use crate::codec::Cte;
use crate::content;
use crate::fields::unfold;
use crate::tree::{Field, FieldKind, Msg, Part};

/// A media type with lowercase type and subtype, parameters as the message writes them (see
/// `content`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ctype {
    pub ty: String,
    pub sub: String,
    pub params: Vec<(String, Vec<u8>)>,
}

impl Ctype {
    /// RFC 2045 §5.2: no (or an unusable) Content-Type means text/plain; charset=us-ascii.
    pub(crate) fn default_text() -> Ctype {
        Ctype { ty: "text".into(), sub: "plain".into(), params: vec![("charset".into(), b"us-ascii".to_vec())] }
    }

    /// RFC 2046 §5.1.5: inside multipart/digest the default is message/rfc822.
    fn default_message() -> Ctype {
        Ctype { ty: "message".into(), sub: "rfc822".into(), params: Vec::new() }
    }

    /// What a container that our limits stop us from descending into is reported as.
    pub(crate) fn opaque() -> Ctype {
        Ctype { ty: "application".into(), sub: "octet-stream".into(), params: Vec::new() }
    }

    pub(crate) fn param(&self, name: &str) -> Option<&[u8]> {
        self.params.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }
}

/// What a node is, once the real Content-Type and the part tree are put together.
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
    /// The first field of a kind; Content-* fields other than Content-Type only where they
    /// count (see [`Msg::honours_content_fields`]).
    pub(crate) fn first(&self, kind: FieldKind) -> Option<&'m Field> {
        let part = self.part?;
        if kind != FieldKind::ContentType && !self.msg.honours_content_fields(part) {
            return None;
        }
        part.fields.iter().find(|f| f.kind == kind)
    }

    /// The unfolded, trimmed value of the first field of a kind; `None` when absent or empty.
    pub(crate) fn value(&self, kind: FieldKind) -> Option<Vec<u8>> {
        let v = unfold(self.first(kind)?.raw_value(self.msg.buf));
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

    /// The Content-Transfer-Encoding token as written (empty when absent or not one token).
    pub(crate) fn cte_token(&self) -> Vec<u8> {
        self.first(FieldKind::Cte)
            .and_then(|f| content::transfer_encoding(f.raw_value(self.msg.buf)).map(<[u8]>::to_vec))
            .unwrap_or_default()
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
    /// Whether the Content-* fields of `part` (other than Content-Type) count: always in a
    /// part of a multipart; in a message's own header only when it is a MIME message, with a
    /// MIME-Version or a Content-Type field (as Dovecot reads it: elsewhere such fields are
    /// taken for something else than MIME's).
    pub(crate) fn honours_content_fields(&self, part: &Part) -> bool {
        let root = self.parts.first().is_some_and(|r| std::ptr::eq(r, part));
        !root || part.fields.iter().any(|f| matches!(f.kind, FieldKind::MimeVersion | FieldKind::ContentType))
    }

    /// The real Content-Type of a part, from its first Content-Type field.
    pub(crate) fn ctype(&self, part: &Part, parent_is_digest: bool) -> Ctype {
        let field = part.fields.iter().find(|f| f.kind == FieldKind::ContentType);
        let Some((ty, sub, params)) = field.and_then(|f| content::content_type(f.raw_value(self.buf))) else {
            return if parent_is_digest { Ctype::default_message() } else { Ctype::default_text() };
        };
        let mut ct = Ctype { ty, sub, params };
        if ct.ty == "text" && ct.param("charset").is_none() {
            ct.params.push(("charset".into(), b"us-ascii".to_vec()));
        }
        ct
    }

    /// Puts the real type and the part tree together.
    pub(crate) fn shape<'m>(&'m self, part: &'m Part, ct: Ctype) -> (Shape<'m>, Ctype) {
        match (&part.children, ct.ty.as_str(), ct.sub.as_str()) {
            (Some(children), "multipart", _) => (Shape::Multipart(children), ct),
            (_, "message", "rfc822") => (Shape::Message, ct),
            _ => (Shape::Leaf, ct),
        }
    }
}
