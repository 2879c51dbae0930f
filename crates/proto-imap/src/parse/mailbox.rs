//! Mailbox arguments: mailbox names and LIST patterns, the LIST-EXTENDED selection and return
//! options (RFC 5258), STATUS items, and the SELECT/EXAMINE parameters of CONDSTORE and QRESYNC
//! (RFC 7162).

use super::lexer::is_astring_char;
use super::{Parser, R};
use crate::command::*;

fn is_list_char(c: u8) -> bool {
    is_astring_char(c) || c == b'%' || c == b'*'
}

impl Parser<'_> {
    pub(super) fn mailbox(&mut self) -> R<Vec<u8>> {
        self.astring()
    }

    pub(super) fn list_mailbox(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"' | b'{') => self.string(),
            _ => {
                let s = self.take_while(is_list_char);
                if s.is_empty() {
                    return Err("expected a mailbox pattern".into());
                }
                Ok(s.to_vec())
            }
        }
    }

    pub(super) fn select_params(&mut self) -> R<SelectParams> {
        let mut params = SelectParams::default();
        self.expect(b'(')?;
        loop {
            if self.try_word("CONDSTORE") {
                params.condstore = true;
            } else if self.try_word("QRESYNC") {
                self.sp()?;
                self.expect(b'(')?;
                let uidvalidity = self.nz_number()?;
                self.sp()?;
                let modseq = self.number64()?;
                let mut known_uids = None;
                let mut seq_match = None;
                if self.eat(b' ') {
                    if self.peek() == Some(b'(') {
                        seq_match = Some(self.seq_match()?);
                    } else {
                        known_uids = Some(self.sequence_set()?);
                        if self.eat(b' ') {
                            seq_match = Some(self.seq_match()?);
                        }
                    }
                }
                self.expect(b')')?;
                params.qresync = Some(Qresync { uidvalidity, modseq, known_uids, seq_match });
            } else {
                return Err("unknown SELECT parameter".into());
            }
            if self.eat(b')') {
                return Ok(params);
            }
            self.sp()?;
        }
    }

    pub(super) fn seq_match(&mut self) -> R<(SequenceSet, SequenceSet)> {
        self.expect(b'(')?;
        let seqs = self.sequence_set()?;
        self.sp()?;
        let uids = self.sequence_set()?;
        self.expect(b')')?;
        Ok((seqs, uids))
    }

    pub(super) fn list(&mut self) -> R<ListCommand> {
        let mut list = ListCommand::default();
        self.sp()?;
        if self.peek() == Some(b'(') {
            list.extended = true;
            for option in self.paren_list(Self::keyword)? {
                match option.as_str() {
                    "SUBSCRIBED" => list.subscribed = true,
                    "RECURSIVEMATCH" => list.recursive_match = true,
                    "SPECIAL-USE" => list.special_use_only = true,
                    "REMOTE" => {}
                    other => return Err(format!("unknown LIST selection option {other}")),
                }
            }
            if list.recursive_match && !list.subscribed {
                return Err("RECURSIVEMATCH needs another selection option".into());
            }
            self.sp()?;
        }
        list.reference = self.mailbox()?;
        self.sp()?;
        if self.peek() == Some(b'(') {
            list.extended = true;
            list.patterns = self.paren_list(Self::list_mailbox)?;
        } else {
            list.patterns = vec![self.list_mailbox()?];
        }
        if self.eat(b' ') {
            if !self.try_word("RETURN") {
                return Err("expected RETURN".into());
            }
            list.extended = true;
            self.sp()?;
            self.expect(b'(')?;
            if !self.eat(b')') {
                loop {
                    let option = self.keyword()?;
                    match option.as_str() {
                        "SUBSCRIBED" => list.return_subscribed = true,
                        "CHILDREN" => list.return_children = true,
                        "SPECIAL-USE" => list.return_special_use = true,
                        "STATUS" => {
                            self.sp()?;
                            list.return_status = self.paren_list(Self::status_item)?;
                        }
                        other => return Err(format!("unknown LIST return option {other}")),
                    }
                    if self.eat(b')') {
                        break;
                    }
                    self.sp()?;
                }
            }
        }
        Ok(list)
    }

    pub(super) fn status_item(&mut self) -> R<StatusItem> {
        Ok(match self.keyword()?.as_str() {
            "MESSAGES" => StatusItem::Messages,
            "RECENT" => StatusItem::Recent,
            "UIDNEXT" => StatusItem::UidNext,
            "UIDVALIDITY" => StatusItem::UidValidity,
            "UNSEEN" => StatusItem::Unseen,
            "DELETED" => StatusItem::Deleted,
            "SIZE" => StatusItem::Size,
            "HIGHESTMODSEQ" => StatusItem::HighestModSeq,
            other => return Err(format!("unknown STATUS item {other}")),
        })
    }
}
