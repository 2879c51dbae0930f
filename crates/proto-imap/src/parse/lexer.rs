//! The lexical layer of the command parser: atoms, numbers, quoted strings, literals and
//! parenthesised lists (RFC 9051 §9 `atom`, `number`, `string`, `astring`, `nstring`), shared by
//! every command's arguments.

use super::{Parser, R};

pub(super) fn is_atom_char(c: u8) -> bool {
    (0x21..0x7f).contains(&c) && !b"(){%*\"\\]".contains(&c)
}

pub(super) fn is_astring_char(c: u8) -> bool {
    is_atom_char(c) || c == b']'
}

impl<'a> Parser<'a> {
    pub(super) fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    pub(super) fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    pub(super) fn expect(&mut self, c: u8) -> R<()> {
        if self.eat(c) {
            Ok(())
        } else {
            // Escaped: the message goes into a BAD response line, where a raw CR or LF
            // would end it early.
            Err(format!("expected '{}'", c.escape_ascii()))
        }
    }

    pub(super) fn sp(&mut self) -> R<()> {
        self.expect(b' ')
    }

    pub(super) fn at_end(&self) -> bool {
        matches!(&self.b[self.i.min(self.b.len())..], b"\r\n" | b"\n" | b"")
    }

    pub(super) fn end(&mut self) -> R<()> {
        if self.at_end() {
            self.i = self.b.len();
            Ok(())
        } else {
            Err("unexpected characters at the end of the command".into())
        }
    }

    pub(super) fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.i;
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
        &self.b[start..self.i]
    }

    pub(super) fn tag(&mut self) -> R<String> {
        let tag = self.take_while(|c| is_astring_char(c) && c != b'+');
        if tag.is_empty() || tag.len() > 64 {
            return Err("missing or invalid tag".into());
        }
        let tag = String::from_utf8_lossy(tag).into_owned();
        self.sp()?;
        Ok(tag)
    }

    pub(super) fn atom(&mut self) -> R<&'a [u8]> {
        let atom = self.take_while(is_atom_char);
        if atom.is_empty() {
            return Err("expected an atom".into());
        }
        Ok(atom)
    }

    /// An atom, upper-cased, for keywords.
    pub(super) fn keyword(&mut self) -> R<String> {
        Ok(String::from_utf8_lossy(self.atom()?).to_ascii_uppercase())
    }

    /// Consumes `word` (case-insensitive) if it comes next as a whole atom.
    pub(super) fn try_word(&mut self, word: &str) -> bool {
        let end = self.i + word.len();
        let matches = self.b.get(self.i..end).is_some_and(|s| s.eq_ignore_ascii_case(word.as_bytes()))
            && !self.b.get(end).copied().is_some_and(is_atom_char);
        if matches {
            self.i = end;
        }
        matches
    }

    pub(super) fn number64(&mut self) -> R<u64> {
        let digits = self.take_while(|c| c.is_ascii_digit());
        if digits.is_empty() || digits.len() > 19 {
            return Err("expected a number".into());
        }
        std::str::from_utf8(digits).ok().and_then(|d| d.parse().ok()).ok_or_else(|| "number too large".into())
    }

    pub(super) fn number(&mut self) -> R<u32> {
        u32::try_from(self.number64()?).map_err(|_| "number too large".into())
    }

    pub(super) fn nz_number(&mut self) -> R<u32> {
        match self.number()? {
            0 => Err("zero is not allowed here".into()),
            n => Ok(n),
        }
    }

    pub(super) fn quoted(&mut self) -> R<Vec<u8>> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\r') | Some(b'\n') | Some(0) => return Err("unterminated quoted string".into()),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => {
                            out.push(c);
                            self.i += 1;
                        }
                        _ => return Err("invalid escape in quoted string".into()),
                    }
                }
                Some(c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }

    pub(super) fn literal(&mut self) -> R<Vec<u8>> {
        let span = self.literal_span()?;
        Ok(self.b[span].to_vec())
    }

    /// Where a literal's bytes are in the command, without copying them.
    pub(super) fn literal_span(&mut self) -> R<std::ops::Range<usize>> {
        self.expect(b'{')?;
        let size = self.number64()?;
        if !self.eat(b'+') {
            self.eat(b'-');
        }
        self.expect(b'}')?;
        self.eat(b'\r');
        self.expect(b'\n')?;
        let size = usize::try_from(size).map_err(|_| "literal too large")?;
        let end = self.i.checked_add(size).filter(|&e| e <= self.b.len()).ok_or("truncated literal")?;
        let start = self.i;
        self.i = end;
        Ok(start..end)
    }

    pub(super) fn string(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => self.literal(),
            _ => Err("expected a string".into()),
        }
    }

    pub(super) fn astring(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"' | b'{') => self.string(),
            _ => {
                let s = self.take_while(is_astring_char);
                if s.is_empty() {
                    return Err("expected a string or atom".into());
                }
                Ok(s.to_vec())
            }
        }
    }

    pub(super) fn astring_utf8(&mut self) -> R<String> {
        String::from_utf8(self.astring()?).map_err(|_| "invalid UTF-8".into())
    }

    pub(super) fn nstring(&mut self) -> R<Option<Vec<u8>>> {
        if self.try_word("NIL") {
            return Ok(None);
        }
        self.string().map(Some)
    }

    /// A list of items between parentheses, separated by spaces.
    pub(super) fn paren_list<T>(&mut self, mut item: impl FnMut(&mut Self) -> R<T>) -> R<Vec<T>> {
        self.expect(b'(')?;
        let mut items = Vec::new();
        if self.eat(b')') {
            return Ok(items);
        }
        loop {
            items.push(item(self)?);
            if items.len() > 1000 {
                return Err("list too long".into());
            }
            if self.eat(b')') {
                return Ok(items);
            }
            self.sp()?;
        }
    }
}
