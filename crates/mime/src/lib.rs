//! What IMAP FETCH and SEARCH need from a raw RFC 5322 message, computed without I/O:
//! ENVELOPE, BODY and BODYSTRUCTURE once at store time ([`summarize`]), and on demand where the
//! bytes of every `BODY[section]` and `BINARY[part]` one FETCH names are ([`locate`], or one at
//! a time [`section`] and [`binary`]) and the decoded text SEARCH matches against
//! ([`header_values`], [`body_text`]).
//!
//! The MIME structure is found one message level at a time by this crate's own parser (`tree`,
//! which reads malformed MIME the way Dovecot does), field values by `content` and `address`;
//! mail-parser decodes what it decodes well (dates, RFC 2047 words, charsets). This crate owns
//! the walk over the part tree (see `walk`) so that part numbers, limits and output are the
//! same for every entry point.
//!
//! Every input is treated as hostile: nothing here panics on any byte string, nesting deeper
//! than 24 levels and parts beyond a size-proportional budget are reported as opaque leaves,
//! and for a message of `n` bytes, ENVELOPE + BODY + BODYSTRUCTURE stay within `32n + 4096`
//! bytes, `section`/`binary` within `n + 4`, and `body_text` within `4n + 64` (checked in
//! tests/robustness.rs over generated, mutated and truncated messages and hand-built bombs).
#![forbid(unsafe_code)]

mod address;
mod body_text;
mod codec;
mod content;
mod envelope;
mod fields;
mod node;
mod nul;
mod search;
mod section;
mod structure;
mod tree;
pub mod utf7;
mod walk;
mod wire;

pub use nul::{encode_nul_parts, NulBytes};
pub use wire::{nstring, number, string};

use mail_parser::parsers::MessageStream;
use mail_parser::HeaderValue;

use crate::structure::StructureWriter;
use crate::tree::{FieldKind, Msg};
use crate::walk::Walker;

/// Computed once when a message is stored, kept beside it, never re-parsed per FETCH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The IMAP ENVELOPE (RFC 9051 §7.5.2), exactly as it goes on the wire after "ENVELOPE ":
    /// "(date subject from sender reply-to to cc bcc in-reply-to message-id)".
    pub envelope: Vec<u8>,
    /// BODYSTRUCTURE (extensible form, with extension data: md5 NIL, disposition, language, location).
    pub bodystructure: Vec<u8>,
    /// BODY (non-extensible form).
    pub body: Vec<u8>,
    /// Length of the header section including the blank line (offset where the top-level body starts).
    pub header_len: usize,
    /// The Date: header's date and time as written, in its own time zone (the zone itself
    /// ignored), as seconds since 1970-01-01 00:00: SENTBEFORE/SENTON/SENTSINCE compare its day
    /// (RFC 3501 §6.4.4: "disregarding time and timezone"). `None` if absent or unparsable.
    pub sent_date: Option<i64>,
    /// The decoded values of the header fields SEARCH is most often asked about (see
    /// [`header_cache`]).
    pub header_cache: Vec<u8>,
}

/// Parses the message once and produces everything FETCH needs without the message.
pub fn summarize(raw: &[u8]) -> Summary {
    let msg = Msg::parse(raw);
    let mut envelope = Vec::new();
    envelope::write(&msg, &mut envelope);
    let mut writer = StructureWriter::default();
    Walker::new(raw.len()).walk(&msg, &mut writer);
    let sent_date =
        msg.all(FieldKind::Date).last().and_then(|f| match MessageStream::new(f.raw_value(msg.buf)).parse_date() {
            HeaderValue::DateTime(date) if date.is_valid() => Some(date.to_timestamp_local()),
            _ => None,
        });
    let header_len = msg.header_end();
    Summary {
        envelope,
        bodystructure: writer.bodystructure,
        body: writer.body,
        header_len,
        sent_date,
        header_cache: header_cache(raw.get(..header_len).unwrap_or(raw)),
    }
}

/// A FETCH section spec: `BODY[1.2.HEADER.FIELDS (SUBJECT)]` is `part = [1, 2]`,
/// `text = Some(HeaderFields(["SUBJECT"]))`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Section {
    pub part: Vec<u32>,
    pub text: Option<SectionText>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText {
    Header,
    HeaderFields(Vec<String>),
    HeaderFieldsNot(Vec<String>),
    Text,
    Mime,
}

/// The bytes of BODY[section] per RFC 9051 §6.4.5 (raw, not decoded); None when the part does not exist.
///
/// Also None when the specifier does not apply: MIME without a part number, or HEADER,
/// HEADER.FIELDS(.NOT), TEXT after a part number that is not a message/rfc822 part.
pub fn section(raw: &[u8], section: &Section) -> Option<Vec<u8>> {
    section::section(raw, section)
}

pub use section::{locate, Found, Wanted};

/// The content-transfer-encoding of a part is one this server cannot undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownEncoding;

impl std::fmt::Display for UnknownEncoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("unknown content-transfer-encoding")
    }
}

impl std::error::Error for UnknownEncoding {}

/// `BINARY[part]` (RFC 3516 / RFC 9051): the part's content with its Content-Transfer-Encoding removed.
/// Err(UnknownEncoding) for an encoding we cannot decode (the server answers NO [UNKNOWN-CTE]).
///
/// An empty part number is the whole message, unchanged.
pub fn binary(raw: &[u8], part: &[u32]) -> Result<Option<Vec<u8>>, UnknownEncoding> {
    section::binary(raw, part)
}

/// For SEARCH: every value of header `name` (case-insensitive) in the top-level header section, unfolded and with RFC 2047 encoded words decoded to UTF-8.
pub fn header_values(raw: &[u8], name: &str) -> Vec<String> {
    search::header_values(raw, name)
}

/// For SEARCH: the values of the [`CACHED_FIELDS`] of a header section (as
/// [`header_values`] gives them), in a compact form read with [`HeaderCache`]. Computed once
/// when a message is stored.
pub fn header_cache(header: &[u8]) -> Vec<u8> {
    search::header_cache(header)
}

/// For SEARCH FROM, TO, CC and BCC: each `name` field of the top-level header section as the
/// text those keys match: its addresses as `Display Name <local@domain>` (names decoded,
/// comments and quoting gone), groups as `group: members;` (RFC 9051 §6.4.4).
pub fn address_values(raw: &[u8], name: &str) -> Vec<String> {
    search::address_values(raw, name)
}

pub use search::{
    contains_lowered, header_may_contain, HeaderCache, ParsedHeader, CACHED_ADDRESS_FIELDS, CACHED_FIELDS,
};

/// For SEARCH BODY/TEXT: the decoded text of every text/* part (charset-converted to UTF-8 as mail-parser does), concatenated.
///
/// Parts are separated by a newline; text/html is included as it is (tags and all).
pub fn body_text(raw: &[u8]) -> String {
    body_text::body_text(raw)
}

/// For SEARCH BODY/TEXT: for each of `needles` (each lower-cased with `str::to_lowercase`),
/// whether [`body_text`] lower-cased holds it, as `body_text(raw).to_lowercase().contains(n)`
/// says, without making the text whole: it is decoded, lower-cased and searched 64 KiB at a
/// time, and the search stops once every needle is found. An empty needle is always found.
pub fn body_contains(raw: &[u8], needles: &[&str]) -> Vec<bool> {
    body_text::body_contains(raw, needles)
}
