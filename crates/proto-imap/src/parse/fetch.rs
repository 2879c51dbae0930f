//! FETCH arguments: the message data items, their body sections and partial ranges
//! (RFC 9051 §6.4.5), BINARY (RFC 3516), and the CHANGEDSINCE/VANISHED modifiers (RFC 7162).

use super::lexer::is_atom_char;
use super::{Parser, R};
use crate::command::*;

impl Parser<'_> {
    pub(super) fn fetch(&mut self, uid: bool) -> R<FetchCommand> {
        self.sp()?;
        let set = self.sequence_set()?;
        self.sp()?;
        let items = if self.peek() == Some(b'(') {
            let items = self.paren_list(Self::fetch_att)?;
            if items.is_empty() {
                return Err("empty FETCH item list".into());
            }
            items
        } else if self.try_word("ALL") {
            vec![FetchItem::Flags, FetchItem::InternalDate, FetchItem::Rfc822Size, FetchItem::Envelope]
        } else if self.try_word("FAST") {
            vec![FetchItem::Flags, FetchItem::InternalDate, FetchItem::Rfc822Size]
        } else if self.try_word("FULL") {
            vec![FetchItem::Flags, FetchItem::InternalDate, FetchItem::Rfc822Size, FetchItem::Envelope, FetchItem::Body]
        } else {
            vec![self.fetch_att()?]
        };
        let mut command = FetchCommand { uid, set, items, changed_since: None, vanished: false };
        if self.eat(b' ') {
            self.expect(b'(')?;
            loop {
                if self.try_word("CHANGEDSINCE") {
                    self.sp()?;
                    command.changed_since = Some(self.number64()?);
                } else if self.try_word("VANISHED") {
                    command.vanished = true;
                } else {
                    return Err("unknown FETCH modifier".into());
                }
                if self.eat(b')') {
                    break;
                }
                self.sp()?;
            }
            if command.vanished && (!uid || command.changed_since.is_none()) {
                return Err("VANISHED needs UID FETCH with CHANGEDSINCE".into());
            }
        }
        Ok(command)
    }

    pub(super) fn fetch_att(&mut self) -> R<FetchItem> {
        let name = self.take_while(|c| is_atom_char(c) && c != b'[' && c != b'<');
        let name = String::from_utf8_lossy(name).to_ascii_uppercase();
        let legacy = |s: &'static str, text: Option<SectionText>| FetchItem::BodySection {
            peek: s == "RFC822.HEADER",
            section: Section { part: vec![], text },
            partial: None,
            legacy: Some(s),
        };
        Ok(match name.as_str() {
            "ENVELOPE" => FetchItem::Envelope,
            "FLAGS" => FetchItem::Flags,
            "INTERNALDATE" => FetchItem::InternalDate,
            "RFC822.SIZE" => FetchItem::Rfc822Size,
            "UID" => FetchItem::Uid,
            "MODSEQ" => FetchItem::ModSeq,
            "BODYSTRUCTURE" => FetchItem::BodyStructure,
            "RFC822" => legacy("RFC822", None),
            "RFC822.HEADER" => legacy("RFC822.HEADER", Some(SectionText::Header)),
            "RFC822.TEXT" => legacy("RFC822.TEXT", Some(SectionText::Text)),
            "BODY" if self.peek() != Some(b'[') => FetchItem::Body,
            "BODY" | "BODY.PEEK" => {
                let section = self.section()?;
                let partial = self.partial()?;
                FetchItem::BodySection { peek: name == "BODY.PEEK", section, partial, legacy: None }
            }
            "BINARY" | "BINARY.PEEK" => {
                let part = self.section_binary()?;
                let partial = self.partial()?;
                FetchItem::Binary { peek: name == "BINARY.PEEK", part, partial }
            }
            "BINARY.SIZE" => FetchItem::BinarySize { part: self.section_binary()? },
            _ => return Err(format!("unknown FETCH item {name}")),
        })
    }

    pub(super) fn section_part(&mut self) -> R<Vec<u32>> {
        let mut part = Vec::new();
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            part.push(self.nz_number()?);
            if part.len() > 32 {
                return Err("section nested too deeply".into());
            }
            if !(self.peek() == Some(b'.') && self.b.get(self.i + 1).is_some_and(|c| c.is_ascii_digit())) {
                break;
            }
            self.i += 1;
        }
        Ok(part)
    }

    pub(super) fn section(&mut self) -> R<Section> {
        self.expect(b'[')?;
        let part = self.section_part()?;
        let mut text = None;
        if !part.is_empty() {
            if self.eat(b'.') {
                text = Some(self.section_text(true)?);
            }
        } else if self.peek() != Some(b']') {
            text = Some(self.section_text(false)?);
        }
        self.expect(b']')?;
        Ok(Section { part, text })
    }

    pub(super) fn section_text(&mut self, mime_allowed: bool) -> R<SectionText> {
        let word = self.take_while(|c| is_atom_char(c) && c != b'[' && c != b']');
        let word = String::from_utf8_lossy(word).to_ascii_uppercase();
        Ok(match word.as_str() {
            "HEADER" => SectionText::Header,
            "TEXT" => SectionText::Text,
            "MIME" if mime_allowed => SectionText::Mime,
            "HEADER.FIELDS" | "HEADER.FIELDS.NOT" => {
                self.sp()?;
                let fields = self.paren_list(Self::astring_utf8)?;
                if fields.is_empty() {
                    return Err("empty header list".into());
                }
                if word == "HEADER.FIELDS" {
                    SectionText::HeaderFields(fields)
                } else {
                    SectionText::HeaderFieldsNot(fields)
                }
            }
            _ => return Err(format!("invalid section {word}")),
        })
    }

    pub(super) fn section_binary(&mut self) -> R<Vec<u32>> {
        self.expect(b'[')?;
        let part = self.section_part()?;
        self.expect(b']')?;
        Ok(part)
    }

    pub(super) fn partial(&mut self) -> R<Option<(u64, u64)>> {
        if !self.eat(b'<') {
            return Ok(None);
        }
        let start = self.number64()?;
        self.expect(b'.')?;
        let length = self.number64()?;
        if length == 0 {
            return Err("a partial length must not be zero".into());
        }
        self.expect(b'>')?;
        Ok(Some((start, length)))
    }
}
