//! ENVELOPE (RFC 9051 §7.5.2, RFC 3501 §7.4.2) from one message's header.
//!
//! Date, subject, in-reply-to and message-id are the last such field, raw and unfolded; each
//! address list joins the addresses of every field of its kind, parsed by our own parser (see
//! `address`) from the original bytes. Subject and display names go out as written (encoded
//! words and 8-bit bytes included, 8-bit text as a literal: never decoded and re-encoded, so
//! never lost), with their white space tidied as Dovecot tidies it. Each list's output is capped relative to the size of its field, so a header
//! like "To: a:;b:;c:;..." (three bytes per empty group, which the grammar turns into two
//! address structures) cannot multiply the input.

use crate::address::{self, Item, Mailbox};
use crate::fields::unfold;
use crate::tree::{FieldKind, Msg};
use crate::wire::{nstring, string};

const LIST_BASE: usize = 64;
const LIST_FACTOR: usize = 4;
/// The entry that ends a group (RFC 3501 §7.4.2).
const GROUP_END: &[u8] = b"(NIL NIL NIL NIL)";

pub(crate) fn write(msg: &Msg<'_>, out: &mut Vec<u8>) {
    // The last of each single field (as Dovecot takes them when a header repeats one), every
    // address of every field of a kind.
    let last = |kind| msg.all(kind).last().map(|f| f.raw_value(msg.buf));
    let text = |kind| last(kind).map(unfold);
    let from = addresses(msg, FieldKind::From);
    let sender = addresses(msg, FieldKind::Sender).or_else(|| from.clone());
    let reply_to = addresses(msg, FieldKind::ReplyTo).or_else(|| from.clone());

    out.push(b'(');
    nstring(out, text(FieldKind::Date).as_deref());
    out.push(b' ');
    nstring(out, last(FieldKind::Subject).map(for_humans).as_deref());
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
    nstring(out, text(FieldKind::InReplyTo).as_deref());
    out.push(b' ');
    nstring(out, text(FieldKind::MessageId).as_deref());
    out.push(b')');
}

/// Text for people (the subject, display names): line breaks removed, tabs made spaces, runs
/// of white space made one, trimmed; the bytes otherwise as written (encoded words, 8-bit).
pub(crate) fn for_humans(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    for &b in value.iter().filter(|&&b| b != b'\r' && b != b'\n') {
        let b = if b == b'\t' { b' ' } else { b };
        if b == b' ' && (out.is_empty() || out.last() == Some(&b' ')) {
            continue;
        }
        out.push(b);
    }
    if out.last() == Some(&b' ') {
        out.pop();
    }
    out
}

/// The parenthesised address list of every field of a kind; `None` when there is none, or
/// none holds an address (the envelope then says NIL, or copies From).
fn addresses(msg: &Msg<'_>, kind: FieldKind) -> Option<Vec<u8>> {
    let mut out = vec![b'('];
    for field in msg.all(kind) {
        let value = field.raw_value(msg.buf);
        let limit = out.len() + LIST_BASE + LIST_FACTOR * value.len();
        let mut in_group = false;
        for item in address::parse(value) {
            if out.len() > limit {
                break;
            }
            match item {
                // RFC 3501 §7.4.2: start of group is (NIL NIL name NIL), end (NIL NIL NIL NIL).
                Item::GroupStart(name) => {
                    out.extend_from_slice(b"(NIL NIL ");
                    string(&mut out, &for_humans(&name));
                    out.extend_from_slice(b" NIL)");
                    in_group = true;
                }
                Item::GroupEnd => {
                    out.extend_from_slice(GROUP_END);
                    in_group = false;
                }
                Item::Mailbox(mailbox) => write_mailbox(&mut out, &mailbox),
            }
        }
        if in_group {
            // The cap cut the list inside a group: a start without its end is no group a
            // client can read (a fuzzer found it: tests/regressions/envelope-group-nul.eml).
            out.extend_from_slice(GROUP_END);
        }
    }
    if out.len() == 1 {
        return None;
    }
    out.push(b')');
    Some(out)
}

/// One address as (name adl mailbox host), the name's bytes as written. What is missing is
/// named as Dovecot names it (MISSING_MAILBOX, MISSING_DOMAIN, INVALID_ROUTE), never NIL: a NIL
/// host would make the entry a group marker.
fn write_mailbox(out: &mut Vec<u8>, mailbox: &Mailbox) {
    out.push(b'(');
    nstring(out, mailbox.name.as_deref().map(for_humans).filter(|n| !n.is_empty()).as_deref());
    out.push(b' ');
    if mailbox.invalid_route() {
        out.extend_from_slice(b"\"INVALID_ROUTE\"");
    } else {
        nstring(out, mailbox.route.as_deref());
    }
    out.push(b' ');
    string(out, mailbox.local.as_deref().unwrap_or(b"MISSING_MAILBOX"));
    out.push(b' ');
    string(out, mailbox.domain.as_deref().unwrap_or(b"MISSING_DOMAIN"));
    out.push(b')');
}
