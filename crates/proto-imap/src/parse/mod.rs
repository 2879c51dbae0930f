//! The command parser: recursive descent over one framed command (RFC 9051 §9 ABNF, with
//! RFC 3501 rev1 forms and the extensions Portcullis offers).
//!
//! Written here rather than taken from imap-codec (see docs/dependencies.md, "Considered and not used") because
//! its 2.0 alphas do not parse LIST-EXTENDED selection/return options or SEARCH RETURN
//! (ESEARCH), both required here; wrapping it would mean parsing half of the commands twice.
//! This parser is small, total (every input gives a command or an error, never a panic), and
//! covered by unit tests and a fuzz target.
//!
//! One file per concern: `lexer` (atoms, numbers, strings, literals, lists), `values` (sequence
//! sets, flags, dates), `mailbox` (mailbox names, LIST, STATUS, SELECT parameters), `search`,
//! `fetch`, and `dispatch` (the command name and the commands with arguments of their own).

mod dispatch;
mod fetch;
mod lexer;
mod mailbox;
mod search;
mod values;

use crate::command::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The command's tag, when it could be read (the answer is then tagged BAD).
    pub tag: Option<String>,
    pub message: String,
}

pub fn parse_command(input: &[u8]) -> Result<Command, ParseError> {
    let (mut command, message) = parse(input)?;
    if let (CommandBody::Append { message: slot, .. }, Some(span)) = (&mut command.body, message) {
        *slot = input[span].to_vec();
    }
    Ok(command)
}

/// [`parse_command`] for a command the caller gives away: APPEND's message becomes the
/// command's own buffer, cut down in place, never copied, so that a message of the largest
/// size is held once, not twice.
pub fn parse_command_owned(mut input: Vec<u8>) -> Result<Command, ParseError> {
    let (mut command, message) = parse(&input)?;
    if let (CommandBody::Append { message: slot, .. }, Some(span)) = (&mut command.body, message) {
        input.truncate(span.end);
        input.drain(..span.start);
        *slot = input;
    }
    Ok(command)
}

/// The command, and where APPEND's message is in `input` (left empty in the command).
fn parse(input: &[u8]) -> Result<(Command, Option<std::ops::Range<usize>>), ParseError> {
    let mut p = Parser { b: input, i: 0, depth: 0, keys: 0, append_message: None };
    let tag = p.tag().map_err(|message| ParseError { tag: None, message })?;
    let body = p.command_body().map_err(|message| ParseError { tag: Some(tag.clone()), message })?;
    Ok((Command { tag, body }, p.append_message))
}

type R<T> = Result<T, String>;

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
    depth: usize,
    /// SEARCH keys read so far (see `search::MAX_KEYS`).
    keys: usize,
    /// Where APPEND's message literal is.
    append_message: Option<std::ops::Range<usize>>,
}

#[cfg(test)]
mod tests;
