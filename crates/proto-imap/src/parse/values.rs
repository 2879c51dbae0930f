//! Values that several commands share: sequence sets (RFC 9051 §9 `sequence-set`), flags and
//! flag lists, and the dates of SEARCH and APPEND (`date`, `date-time`).

use super::{Parser, R};
use crate::command::*;

impl Parser<'_> {
    pub(super) fn seq_number(&mut self) -> R<SeqNum> {
        if self.eat(b'*') {
            Ok(SeqNum::Star)
        } else {
            Ok(SeqNum::Value(self.nz_number()?))
        }
    }

    /// A sequence set, its ranges sorted and merged here, once (see [`Ranges`]).
    pub(super) fn sequence_set(&mut self) -> R<SequenceSet> {
        if self.eat(b'$') {
            return Ok(SequenceSet::Saved);
        }
        let mut ranges = Vec::new();
        loop {
            let a = self.seq_number()?;
            let b = if self.eat(b':') { self.seq_number()? } else { a };
            ranges.push((a, b));
            if ranges.len() > 100_000 {
                return Err("sequence set too long".into());
            }
            if !self.eat(b',') {
                return Ok(SequenceSet::Ranges(Ranges::new(ranges)));
            }
        }
    }

    pub(super) fn flag(&mut self) -> R<Flag> {
        if self.eat(b'\\') {
            let name = self.keyword()?;
            return Ok(match name.as_str() {
                "SEEN" => Flag::Seen,
                "ANSWERED" => Flag::Answered,
                "FLAGGED" => Flag::Flagged,
                "DELETED" => Flag::Deleted,
                "DRAFT" => Flag::Draft,
                "RECENT" => Flag::Recent,
                _ => Flag::Extension(name),
            });
        }
        Ok(Flag::Keyword(self.keyword_atom()?))
    }

    /// A flag keyword keeps its case (clients show it), compared case-insensitively later.
    pub(super) fn keyword_atom(&mut self) -> R<String> {
        let atom = self.atom()?;
        if atom.len() > 128 {
            return Err("keyword too long".into());
        }
        Ok(String::from_utf8_lossy(atom).into_owned())
    }

    pub(super) fn flag_list(&mut self) -> R<Vec<Flag>> {
        self.expect(b'(')?;
        let mut flags = Vec::new();
        if self.eat(b')') {
            return Ok(flags);
        }
        loop {
            flags.push(self.flag()?);
            if flags.len() > 256 {
                return Err("too many flags".into());
            }
            if self.eat(b')') {
                return Ok(flags);
            }
            self.sp()?;
        }
    }

    pub(super) fn month(&mut self) -> R<u32> {
        let name = self.atom_prefix(3)?;
        const MONTHS: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
        MONTHS
            .iter()
            .position(|m| m.eq_ignore_ascii_case(&name))
            .map(|i| i as u32 + 1)
            .ok_or_else(|| "invalid month".into())
    }

    pub(super) fn atom_prefix(&mut self, n: usize) -> R<String> {
        let s = self.b.get(self.i..self.i + n).ok_or("truncated date")?;
        self.i += n;
        Ok(String::from_utf8_lossy(s).into_owned())
    }

    pub(super) fn digits(&mut self, min: usize, max: usize) -> R<u32> {
        let d = self.take_while(|c| c.is_ascii_digit());
        if d.len() < min || d.len() > max {
            return Err("invalid date".into());
        }
        std::str::from_utf8(d).ok().and_then(|d| d.parse().ok()).ok_or_else(|| "invalid date".into())
    }

    /// `date` (SEARCH): d-Mon-yyyy, optionally quoted; the day number since the epoch.
    pub(super) fn date(&mut self) -> R<i64> {
        let quoted = self.eat(b'"');
        let day = self.digits(1, 2)?;
        self.expect(b'-')?;
        let month = self.month()?;
        self.expect(b'-')?;
        let year = self.digits(4, 4)?;
        if quoted {
            self.expect(b'"')?;
        }
        crate::time::days_from_civil(year as i64, month, day).ok_or_else(|| "invalid date".into())
    }

    /// `date-time` (APPEND): "dd-Mon-yyyy hh:mm:ss +zzzz", as Unix seconds.
    pub(super) fn date_time(&mut self) -> R<i64> {
        self.expect(b'"')?;
        self.eat(b' ');
        let day = self.digits(1, 2)?;
        self.expect(b'-')?;
        let month = self.month()?;
        self.expect(b'-')?;
        let year = self.digits(4, 4)?;
        self.sp()?;
        let hour = self.digits(2, 2)?;
        self.expect(b':')?;
        let minute = self.digits(2, 2)?;
        self.expect(b':')?;
        let second = self.digits(2, 2)?;
        self.sp()?;
        let sign: i64 = if self.eat(b'-') {
            -1
        } else {
            self.expect(b'+')?;
            1
        };
        let zone = self.digits(4, 4)? as i64;
        self.expect(b'"')?;
        if hour > 23 || minute > 59 || second > 60 || zone % 100 > 59 {
            return Err("invalid time".into());
        }
        let days = crate::time::days_from_civil(year as i64, month, day).ok_or("invalid date")?;
        let offset = sign * ((zone / 100) * 3600 + (zone % 100) * 60);
        Ok(days * 86400 + hour as i64 * 3600 + minute as i64 * 60 + second.min(59) as i64 - offset)
    }
}
