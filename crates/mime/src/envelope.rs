//! ENVELOPE (RFC 9051 §7.5.2, RFC 3501 §7.4.2) from one message's header.
//!
//! Date, subject, in-reply-to and message-id are the first such field, raw and unfolded.
//! Address lists come from mail-parser's address parser run on the original bytes of the first
//! such field. Each list's output is capped relative to the size of its field, so a header
//! like "To: a:;b:;c:;..." (three bytes per empty group, which the grammar turns into two
//! address structures) cannot multiply the input.

use mail_parser::parsers::MessageStream;
use mail_parser::{Addr, Address, HeaderValue};

use crate::fields::{encode_word, unfold};
use crate::tree::{FieldKind, Msg};
use crate::wire::{nstring, string};

const LIST_BASE: usize = 64;
const LIST_FACTOR: usize = 4;

pub(crate) fn write(msg: &Msg<'_>, out: &mut Vec<u8>) {
    let raw = |kind| msg.first(kind).map(|f| unfold(f.raw_value(msg.buf)));
    let from = addresses(msg, FieldKind::From);
    let sender = addresses(msg, FieldKind::Sender).or_else(|| from.clone());
    let reply_to = addresses(msg, FieldKind::ReplyTo).or_else(|| from.clone());

    out.push(b'(');
    nstring(out, raw(FieldKind::Date).as_deref());
    out.push(b' ');
    nstring(out, raw(FieldKind::Subject).as_deref());
    for list in [
        from,
        sender,
        reply_to,
        addresses(msg, FieldKind::To),
        addresses(msg, FieldKind::Cc),
        addresses(msg, FieldKind::Bcc),
    ] {
        out.push(b' ');
        match list {
            Some(list) => out.extend_from_slice(&list),
            None => out.extend_from_slice(b"NIL"),
        }
    }
    out.push(b' ');
    nstring(out, raw(FieldKind::InReplyTo).as_deref());
    out.push(b' ');
    nstring(out, raw(FieldKind::MessageId).as_deref());
    out.push(b')');
}

/// The parenthesised address list of the first field of a kind; `None` when the field is
/// absent or holds no address (the envelope then says NIL, or copies From).
fn addresses(msg: &Msg<'_>, kind: FieldKind) -> Option<Vec<u8>> {
    let value = msg.first(kind)?.raw_value(msg.buf);
    let limit = LIST_BASE + LIST_FACTOR * value.len();
    let mut out = vec![b'('];
    match MessageStream::new(value).parse_address() {
        HeaderValue::Address(Address::List(list)) => {
            for addr in &list {
                if out.len() > limit {
                    break;
                }
                write_addr(&mut out, addr);
            }
        }
        HeaderValue::Address(Address::Group(groups)) => {
            for group in &groups {
                if out.len() > limit {
                    break;
                }
                let name = group.name.as_deref().filter(|n| !n.is_empty());
                if let Some(name) = name {
                    // Start of group: host NIL, mailbox the group name.
                    out.extend_from_slice(b"(NIL NIL ");
                    string(&mut out, &encode_word(name));
                    out.extend_from_slice(b" NIL)");
                }
                for addr in &group.addresses {
                    if out.len() > limit {
                        break;
                    }
                    write_addr(&mut out, addr);
                }
                if name.is_some() {
                    out.extend_from_slice(b"(NIL NIL NIL NIL)");
                }
            }
        }
        _ => {}
    }
    if out.len() == 1 {
        return None;
    }
    out.push(b')');
    Some(out)
}

/// One address as (name adl mailbox host). A missing domain or mailbox is written as an empty
/// string, never NIL: a NIL host would make the entry a group marker.
fn write_addr(out: &mut Vec<u8>, addr: &Addr<'_>) {
    let name = addr.name.as_deref().filter(|n| !n.is_empty());
    let address = addr.address.as_deref().filter(|a| !a.is_empty());
    if name.is_none() && address.is_none() {
        return;
    }
    let (mailbox, host) = match address {
        Some(address) => address.rsplit_once('@').unwrap_or((address, "")),
        None => ("", ""),
    };
    out.push(b'(');
    nstring(out, name.map(encode_word).as_deref());
    out.extend_from_slice(b" NIL ");
    string(out, mailbox.as_bytes());
    out.push(b' ');
    string(out, host.as_bytes());
    out.push(b')');
}
