//! BODY and BODYSTRUCTURE (RFC 9051 §7.5.2, RFC 3501 §7.4.2), written side by side in one
//! walk: they differ only by the extension data.
//!
//! Conventions: type, subtype, parameter names and the disposition type in uppercase (as in
//! the RFC examples); values as the message has them. A parameter value that is not ASCII
//! (mail-parser hands back RFC 2231 and RFC 2047 values decoded) is written back as an
//! RFC 2231 `NAME*` "utf-8''..." value, so the structure stays 7-bit for every client.

use mail_parser::parsers::MessageStream;
use mail_parser::HeaderValue;

use crate::envelope;
use crate::fields::{count_lines, rfc2231_value, unfold};
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

/// body-fld-param: NIL or ("NAME" "value" ...).
fn params(params: &[(String, String)], out: &mut Vec<u8>) {
    // mail-parser reports the language of an RFC 2231 value as an extra "<name>-language"
    // parameter; it is not in the message, so it is not in the structure.
    let shown: Vec<&(String, String)> = params
        .iter()
        .filter(|(name, _)| name.strip_suffix("-language").is_none_or(|stem| !params.iter().any(|(n, _)| n == stem)))
        .collect();
    if shown.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (name, value)) in shown.into_iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        let mut name = name.to_ascii_uppercase().into_bytes();
        if value.is_ascii() {
            string(out, &name);
            out.push(b' ');
            string(out, value.as_bytes());
        } else {
            name.push(b'*');
            string(out, &name);
            out.push(b' ');
            string(out, &rfc2231_value(value));
        }
    }
    out.push(b')');
}

/// body-fld-dsp: NIL or ("TYPE" params).
fn disposition(node: &NodeRef<'_, '_>, out: &mut Vec<u8>) {
    let parsed =
        node.last(FieldKind::Disposition).map(|f| MessageStream::new(f.raw_value(node.msg.buf)).parse_content_type());
    match parsed {
        Some(HeaderValue::ContentType(cd)) if !cd.c_type.is_empty() => {
            let mut ty = cd.c_type.to_ascii_uppercase();
            // "attachment/foo" is not a disposition, but do not lose what was written.
            if let Some(sub) = cd.c_subtype.as_deref() {
                ty.push('/');
                ty.push_str(&sub.to_ascii_uppercase());
            }
            let list: Vec<(String, String)> = cd
                .attributes
                .unwrap_or_default()
                .into_iter()
                .map(|a| (a.name.into_owned(), a.value.into_owned()))
                .collect();
            out.push(b'(');
            string(out, ty.as_bytes());
            out.push(b' ');
            params(&list, out);
            out.push(b')');
        }
        _ => out.extend_from_slice(b"NIL"),
    }
}

/// body-fld-lang: NIL, one string, or a list of strings (RFC 3282 language tags).
fn language(node: &NodeRef<'_, '_>, out: &mut Vec<u8>) {
    let value = node.last(FieldKind::Language).map(|f| unfold(f.raw_value(node.msg.buf))).unwrap_or_default();
    let tags: Vec<&[u8]> = value.split(|&b| b == b',').map(crate::fields::trim).filter(|t| !t.is_empty()).collect();
    match tags.as_slice() {
        [] => out.extend_from_slice(b"NIL"),
        [one] => string(out, one),
        many => {
            out.push(b'(');
            for (i, tag) in many.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                string(out, tag);
            }
            out.push(b')');
        }
    }
}
