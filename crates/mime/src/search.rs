//! Text for SEARCH: decoded header values and decoded body text.

use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::parsers::MessageStream;
use mail_parser::HeaderValue;

use crate::node::NodeRef;
use crate::tree::Msg;
use crate::walk::{Flow, Visitor, Walker};

pub(crate) fn header_values(raw: &[u8], name: &str) -> Vec<String> {
    let msg = Msg::parse(raw);
    msg.fields()
        .iter()
        .filter(|f| f.name(msg.buf).eq_ignore_ascii_case(name.as_bytes()))
        .map(|f| match MessageStream::new(f.raw_value(msg.buf)).parse_unstructured() {
            HeaderValue::Text(text) => text.into_owned(),
            // An empty field still counts: SEARCH HEADER name "" matches messages that have it.
            _ => String::new(),
        })
        .collect()
}

pub(crate) fn body_text(raw: &[u8]) -> String {
    let msg = Msg::parse(raw);
    let mut collector = TextCollector { out: String::new() };
    Walker::new(raw.len()).walk(&msg, &mut collector);
    collector.out
}

/// Appends every text/* leaf, transfer-decoded and converted to UTF-8 by mail-parser's
/// charset tables (unknown charsets are read as UTF-8, invalid bytes replaced).
struct TextCollector {
    out: String,
}

impl Visitor for TextCollector {
    fn leaf(&mut self, node: &NodeRef<'_, '_>) -> Flow {
        if node.ct.ty != "text" {
            return Flow::Continue;
        }
        let bytes = node.decoded_body();
        let decoder = node.ct.param("charset").and_then(|c| charset_decoder(c.as_bytes()));
        let text = match decoder {
            Some(decode) => decode(&bytes),
            None => String::from_utf8_lossy(&bytes).into_owned(),
        };
        if !self.out.is_empty() && !text.is_empty() {
            self.out.push('\n');
        }
        self.out.push_str(&text);
        Flow::Continue
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
