//! BODY and BODYSTRUCTURE (RFC 9051 §7.5.2, RFC 3501 §7.4.2), written side by side in one
//! walk: they differ only by the extension data.
//!
//! Conventions: type, subtype, parameter names and the disposition type in uppercase (as in
//! the RFC examples); parameter values as the message has them (8-bit ones as literals), as
//! Dovecot sends them. Line counts are the line ends in the body (RFC 3501 §7.4.2 "size of the
//! body in text lines"): the line break before a boundary is the boundary's, so a part's last
//! line, without one of its own, is not counted, as Dovecot and Cyrus count.

use crate::content;
use crate::envelope;
use crate::fields::count_lines;
use crate::node::NodeRef;
use crate::tree::{FieldKind, Msg};
use crate::walk::{Flow, Visitor};
use crate::wire::{nstring, number, string};

#[derive(Default)]
pub(crate) struct StructureWriter {
    /// Extensible form.
    pub bodystructure: Vec<u8>,
    /// Non-extensible form.
    pub body: Vec<u8>,
}

impl StructureWriter {
    fn both(&mut self, bytes: &[u8]) {
        self.bodystructure.extend_from_slice(bytes);
        self.body.extend_from_slice(bytes);
    }
}

impl Visitor for StructureWriter {
    fn leaf(&mut self, node: &NodeRef<'_, '_>) -> Flow {
        let mut common = Vec::new();
        basic_fields(node, &mut common);
        if node.ct.ty == "text" {
            common.push(b' ');
            number(&mut common, count_lines(node.body()));
        }
        self.both(&common);
        single_part_extension(node, &mut self.bodystructure);
        self.both(b")");
        Flow::Continue
    }

    fn multipart_start(&mut self, _node: &NodeRef<'_, '_>) -> Flow {
        self.both(b"(");
        Flow::Continue
    }

    fn multipart_end(&mut self, node: &NodeRef<'_, '_>) -> Flow {
        let mut subtype = vec![b' '];
        string(&mut subtype, node.ct.sub.to_ascii_uppercase().as_bytes());
        self.both(&subtype);
        // body-ext-mpart: parameters, disposition, language, location.
        let out = &mut self.bodystructure;
        out.push(b' ');
        params(node.ct.params.as_slice(), out);
        out.push(b' ');
        disposition(node, out);
        out.push(b' ');
        language(node, out);
        out.push(b' ');
        nstring(out, node.value(FieldKind::Location).as_deref());
        self.both(b")");
        Flow::Continue
    }

    fn message_start(&mut self, node: &NodeRef<'_, '_>, inner: &Msg<'_>) -> Flow {
        let mut common = Vec::new();
        basic_fields(node, &mut common);
        common.push(b' ');
        envelope::write(inner, &mut common);
        common.push(b' ');
        self.both(&common);
        Flow::Continue
    }

    fn message_end(&mut self, node: &NodeRef<'_, '_>, _inner: &Msg<'_>) -> Flow {
        let mut lines = vec![b' '];
        number(&mut lines, count_lines(node.body()));
        self.both(&lines);
        single_part_extension(node, &mut self.bodystructure);
        self.both(b")");
        Flow::Continue
    }
}

/// "(" type subtype params id description encoding size — shared by every non-multipart.
fn basic_fields(node: &NodeRef<'_, '_>, out: &mut Vec<u8>) {
    out.push(b'(');
    string(out, node.ct.ty.to_ascii_uppercase().as_bytes());
    out.push(b' ');
    string(out, node.ct.sub.to_ascii_uppercase().as_bytes());
    out.push(b' ');
    params(&node.ct.params, out);
    out.push(b' ');
    nstring(out, node.value(FieldKind::Id).as_deref());
    out.push(b' ');
    nstring(out, node.value(FieldKind::Description).as_deref());
    out.push(b' ');
    let encoding = node.cte_token().to_ascii_uppercase();
    string(out, if encoding.is_empty() { b"7BIT" } else { &encoding });
    out.push(b' ');
    number(out, node.body().len());
}

/// body-ext-1part: md5 (never computed), disposition, language, location.
fn single_part_extension(node: &NodeRef<'_, '_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b" NIL ");
    disposition(node, out);
    out.push(b' ');
    language(node, out);
    out.push(b' ');
    nstring(out, node.value(FieldKind::Location).as_deref());
}

/// body-fld-param: NIL or ("NAME" "value" ...), values as the message writes them.
fn params(params: &[(String, Vec<u8>)], out: &mut Vec<u8>) {
    if params.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (name, value)) in params.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        string(out, name.to_ascii_uppercase().as_bytes());
        out.push(b' ');
        string(out, value);
    }
    out.push(b')');
}

/// body-fld-dsp: NIL or ("TYPE" params).
fn disposition(node: &NodeRef<'_, '_>, out: &mut Vec<u8>) {
    match node.first(FieldKind::Disposition).and_then(|f| content::disposition(f.raw_value(node.msg.buf))) {
        Some((ty, list)) => {
            out.push(b'(');
            string(out, &ty.to_ascii_uppercase());
            out.push(b' ');
            params(&list, out);
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
}

/// body-fld-lang: NIL or a list of the language tags (RFC 3282), as Dovecot writes it also
/// for one tag.
fn language(node: &NodeRef<'_, '_>, out: &mut Vec<u8>) {
    let value = node.value(FieldKind::Language).unwrap_or_default();
    let tags: Vec<&[u8]> = value.split(|&b| b == b',').map(crate::fields::trim).filter(|t| !t.is_empty()).collect();
    if tags.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, tag) in tags.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        string(out, tag);
    }
    out.push(b')');
}
