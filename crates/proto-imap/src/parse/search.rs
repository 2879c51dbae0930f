//! SEARCH arguments: the RETURN options of ESEARCH (RFC 4731), CHARSET, and the search keys
//! (RFC 9051 §6.4.4), with a bound on how deeply a hostile client may nest them.

use super::{Parser, R};
use crate::command::*;

/// Nesting allowed in SEARCH keys (parentheses, NOT, OR): enough for any real client, and a
/// bound on recursion for hostile ones.
const MAX_DEPTH: usize = 32;
/// Keys one SEARCH may hold, nested ones included: each is evaluated for every message of the
/// mailbox, so a command of 64 KiB of `1:*` keys (16,000 of them) would cost 16,000 tests per
/// message. Real clients send a handful.
pub(crate) const MAX_KEYS: usize = 1000;

impl Parser<'_> {
    pub(super) fn search(&mut self, uid: bool) -> R<SearchCommand> {
        self.sp()?;
        let mut returns = None;
        if self.try_word("RETURN") {
            self.sp()?;
            returns = Some(self.paren_list(|p| {
                Ok(match p.keyword()?.as_str() {
                    "MIN" => SearchReturn::Min,
                    "MAX" => SearchReturn::Max,
                    "ALL" => SearchReturn::All,
                    "COUNT" => SearchReturn::Count,
                    "SAVE" => SearchReturn::Save,
                    other => return Err(format!("unknown SEARCH return option {other}")),
                })
            })?);
            self.sp()?;
        }
        let mut charset = None;
        if self.try_word("CHARSET") {
            self.sp()?;
            charset = Some(self.astring_utf8()?.to_ascii_uppercase());
            self.sp()?;
        }
        let mut keys = vec![self.search_key()?];
        while self.eat(b' ') {
            keys.push(self.search_key()?);
        }
        let criteria = if keys.len() == 1 { keys.pop().unwrap_or(SearchKey::All) } else { SearchKey::And(keys) };
        Ok(SearchCommand { uid, returns, charset, criteria })
    }

    pub(super) fn search_key(&mut self) -> R<SearchKey> {
        self.keys += 1;
        if self.keys > MAX_KEYS {
            return Err(format!("more than {MAX_KEYS} search keys"));
        }
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("search criteria nested too deeply".into());
        }
        let key = self.search_key_inner();
        self.depth -= 1;
        key
    }

    pub(super) fn search_key_inner(&mut self) -> R<SearchKey> {
        match self.peek() {
            Some(b'(') => {
                let keys = self.paren_list(Self::search_key)?;
                if keys.is_empty() {
                    return Err("empty search key list".into());
                }
                return Ok(SearchKey::And(keys));
            }
            Some(b'*' | b'$' | b'0'..=b'9') => return Ok(SearchKey::SequenceSet(self.sequence_set()?)),
            _ => {}
        }
        let name = self.keyword()?;
        let key = match name.as_str() {
            "ALL" => SearchKey::All,
            "ANSWERED" => SearchKey::Flag(Flag::Answered),
            "DELETED" => SearchKey::Flag(Flag::Deleted),
            "DRAFT" => SearchKey::Flag(Flag::Draft),
            "FLAGGED" => SearchKey::Flag(Flag::Flagged),
            "SEEN" => SearchKey::Flag(Flag::Seen),
            "RECENT" => SearchKey::Flag(Flag::Recent),
            "NEW" => SearchKey::New,
            "OLD" => SearchKey::Old,
            "UNANSWERED" => SearchKey::Not(Box::new(SearchKey::Flag(Flag::Answered))),
            "UNDELETED" => SearchKey::Not(Box::new(SearchKey::Flag(Flag::Deleted))),
            "UNDRAFT" => SearchKey::Not(Box::new(SearchKey::Flag(Flag::Draft))),
            "UNFLAGGED" => SearchKey::Not(Box::new(SearchKey::Flag(Flag::Flagged))),
            "UNSEEN" => SearchKey::Not(Box::new(SearchKey::Flag(Flag::Seen))),
            "KEYWORD" | "UNKEYWORD" => {
                self.sp()?;
                let flag = Flag::Keyword(self.keyword_atom()?);
                if name == "KEYWORD" {
                    SearchKey::Flag(flag)
                } else {
                    SearchKey::Not(Box::new(SearchKey::Flag(flag)))
                }
            }
            "BCC" | "BODY" | "CC" | "FROM" | "SUBJECT" | "TEXT" | "TO" => {
                self.sp()?;
                let value = self.astring_utf8()?;
                match name.as_str() {
                    "BCC" => SearchKey::Bcc(value),
                    "BODY" => SearchKey::Body(value),
                    "CC" => SearchKey::Cc(value),
                    "FROM" => SearchKey::From(value),
                    "SUBJECT" => SearchKey::Subject(value),
                    "TEXT" => SearchKey::Text(value),
                    _ => SearchKey::To(value),
                }
            }
            "HEADER" => {
                self.sp()?;
                let field = self.astring_utf8()?;
                self.sp()?;
                SearchKey::Header(field, self.astring_utf8()?)
            }
            "BEFORE" | "ON" | "SINCE" | "SENTBEFORE" | "SENTON" | "SENTSINCE" => {
                self.sp()?;
                let day = self.date()?;
                match name.as_str() {
                    "BEFORE" => SearchKey::Before(day),
                    "ON" => SearchKey::On(day),
                    "SINCE" => SearchKey::Since(day),
                    "SENTBEFORE" => SearchKey::SentBefore(day),
                    "SENTON" => SearchKey::SentOn(day),
                    _ => SearchKey::SentSince(day),
                }
            }
            "LARGER" => {
                self.sp()?;
                SearchKey::Larger(self.number64()?)
            }
            "SMALLER" => {
                self.sp()?;
                SearchKey::Smaller(self.number64()?)
            }
            "UID" => {
                self.sp()?;
                SearchKey::Uid(self.sequence_set()?)
            }
            "NOT" => {
                self.sp()?;
                SearchKey::Not(Box::new(self.search_key()?))
            }
            "OR" => {
                self.sp()?;
                let a = self.search_key()?;
                self.sp()?;
                let b = self.search_key()?;
                SearchKey::Or(Box::new(a), Box::new(b))
            }
            "MODSEQ" => {
                self.sp()?;
                if self.peek() == Some(b'"') {
                    // An entry name and type (per-flag modseqs): accepted, answered with the
                    // message's modseq, which is never lower.
                    self.quoted()?;
                    self.sp()?;
                    let kind = self.keyword()?;
                    if !["PRIV", "SHARED", "ALL"].contains(&kind.as_str()) {
                        return Err("invalid MODSEQ entry type".into());
                    }
                    self.sp()?;
                }
                SearchKey::ModSeq(self.number64()?)
            }
            other => return Err(format!("unknown search key {other}")),
        };
        Ok(key)
    }
}
