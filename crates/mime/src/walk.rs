//! The one depth-first walk over the IMAP part tree that BODYSTRUCTURE, BODY[section], BINARY
//! and SEARCH all use, so that the limits cut every one of them at the same place and a part
//! number means the same part everywhere.
//!
//! Limits, because the input is hostile:
//! - depth: a multipart or message/rfc822 at depth `MAX_DEPTH` is reported as an opaque
//!   application/octet-stream leaf instead of being entered. This bounds recursion and the
//!   re-parsing of nested messages (each level parses its own bytes a bounded number of times:
//!   once, plus `tree`'s look at how the messages inside it end).
//! - parts: every node visited costs one unit of a budget that grows with the message size
//!   (`BUDGET_BASE + len / BUDGET_BYTES_PER_PART`, capped at `MAX_PARTS`). A container met
//!   when the budget is spent becomes opaque, and a multipart stops listing children (it keeps
//!   at least one). Output per node is bounded, so BODYSTRUCTURE stays proportional to the
//!   message however many tiny parts it claims.

use std::borrow::Cow;

use crate::codec::Cte;
use crate::node::{Ctype, NodeRef, Shape};
use crate::tree::{Msg, Part};

pub(crate) const MAX_DEPTH: usize = 24;
pub(crate) const MAX_PARTS: usize = 10_000;
const BUDGET_BASE: usize = 16;
const BUDGET_BYTES_PER_PART: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    Stop,
}

/// Callbacks in document order. `path` on each node is its IMAP part number; a message/rfc822
/// part and the multipart root of the message inside it share one number, and the outer one
/// is visited first.
pub(crate) trait Visitor {
    fn leaf(&mut self, node: &NodeRef<'_, '_>) -> Flow;
    fn multipart_start(&mut self, node: &NodeRef<'_, '_>) -> Flow;
    fn multipart_end(&mut self, node: &NodeRef<'_, '_>) -> Flow;
    /// Before the embedded message's own root part is visited.
    fn message_start(&mut self, node: &NodeRef<'_, '_>, inner: &Msg<'_>) -> Flow;
    fn message_end(&mut self, node: &NodeRef<'_, '_>, inner: &Msg<'_>) -> Flow;
}

pub(crate) struct Walker {
    budget: usize,
}

impl Walker {
    /// `total_len` is the length of the whole stored message, so that every entry point
    /// computes the same budget.
    pub(crate) fn new(total_len: usize) -> Walker {
        Walker { budget: (BUDGET_BASE + total_len / BUDGET_BYTES_PER_PART).min(MAX_PARTS) }
    }

    pub(crate) fn walk(&mut self, msg: &Msg<'_>, visitor: &mut dyn Visitor) {
        let mut path = Vec::new();
        self.message(msg, 0, &mut path, visitor);
    }

    /// Visits the root part of `msg`. A multipart root takes the number of the message that
    /// holds it (none at the top); any other root is part 1 of it.
    fn message(&mut self, msg: &Msg<'_>, depth: usize, path: &mut Vec<u32>, v: &mut dyn Visitor) -> Flow {
        let part = msg.part(0);
        let (shape, ct) = match part {
            Some(root) => self.open(msg, root, msg.ctype(root, false), depth),
            None => {
                self.charge();
                (Shape::Leaf, Ctype::default_text())
            }
        };
        let single = !matches!(shape, Shape::Multipart(_));
        if single {
            path.push(1);
        }
        let flow = self.node(msg, part, &ct, shape, depth, path, v);
        if single {
            path.pop();
        }
        flow
    }

    fn charge(&mut self) {
        self.budget = self.budget.saturating_sub(1);
    }

    /// Charges one node and decides its shape under the limits.
    fn open<'m>(&mut self, msg: &'m Msg<'_>, part: &'m Part, ct: Ctype, depth: usize) -> (Shape<'m>, Ctype) {
        self.charge();
        let (shape, ct) = msg.shape(part, ct);
        match shape {
            Shape::Leaf => (shape, ct),
            _ if depth < MAX_DEPTH && self.budget > 0 => (shape, ct),
            _ => (Shape::Leaf, Ctype::opaque()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn node(
        &mut self,
        msg: &Msg<'_>,
        part: Option<&Part>,
        ct: &Ctype,
        shape: Shape<'_>,
        depth: usize,
        path: &mut Vec<u32>,
        v: &mut dyn Visitor,
    ) -> Flow {
        let here = path.clone();
        let node = NodeRef { msg, part, ct, path: &here };
        match shape {
            Shape::Leaf => v.leaf(&node),
            Shape::Multipart(children) => {
                if v.multipart_start(&node) == Flow::Stop {
                    return Flow::Stop;
                }
                if children.is_empty() {
                    self.charge();
                    let empty = Ctype::default_text();
                    let mut first = here.clone();
                    first.push(1);
                    let flow = v.leaf(&NodeRef { msg, part: None, ct: &empty, path: &first });
                    if flow == Flow::Stop {
                        return Flow::Stop;
                    }
                }
                let digest = ct.sub == "digest";
                let mut number = 0u32;
                for child in children.iter().filter_map(|&id| msg.part(id)) {
                    if number > 0 && self.budget == 0 {
                        break;
                    }
                    number += 1;
                    let (child_shape, child_ct) = self.open(msg, child, msg.ctype(child, digest), depth + 1);
                    path.push(number);
                    let flow = self.node(msg, Some(child), &child_ct, child_shape, depth + 1, path, v);
                    path.pop();
                    if flow == Flow::Stop {
                        return Flow::Stop;
                    }
                }
                v.multipart_end(&node)
            }
            Shape::Message => {
                let bytes: Cow<'_, [u8]> = match node.cte() {
                    // RFC 2046 §5.2.1 forbids encoding message/rfc822, but it happens; the
                    // message is the decoded bytes, and the parts inside refer to those.
                    Some(Cte::Base64 | Cte::QuotedPrintable) => node.decoded_body(),
                    _ => Cow::Borrowed(node.body()),
                };
                let inner = Msg::parse_at(&bytes, depth + 1);
                if v.message_start(&node, &inner) == Flow::Stop {
                    return Flow::Stop;
                }
                if self.message(&inner, depth + 1, path, v) == Flow::Stop {
                    return Flow::Stop;
                }
                v.message_end(&node, &inner)
            }
        }
    }
}
