//! The command parser: recursive descent over one framed command (RFC 9051 §9 ABNF, with
//! RFC 3501 rev1 forms and the extensions Portcullis offers).
//!
//! Written here rather than taken from imap-codec (the crate DEPENDENCIES.md suggests) because
//! its 2.0 alphas do not parse LIST-EXTENDED selection/return options or SEARCH RETURN
//! (ESEARCH), both required here; wrapping it would mean parsing half of the commands twice.
//! This parser is small, total (every input gives a command or an error, never a panic), and
//! covered by unit tests and a fuzz target.

use crate::command::*;
use zeroize::Zeroizing;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The command's tag, when it could be read (the answer is then tagged BAD).
    pub tag: Option<String>,
    pub message: String,
}

/// Nesting allowed in SEARCH keys (parentheses, NOT, OR): enough for any real client, and a
/// bound on recursion for hostile ones.
const MAX_DEPTH: usize = 32;

pub fn parse_command(input: &[u8]) -> Result<Command, ParseError> {
    let mut p = Parser { b: input, i: 0, depth: 0 };
    let tag = p.tag().map_err(|message| ParseError { tag: None, message })?;
    let body = p.command_body().map_err(|message| ParseError { tag: Some(tag.clone()), message })?;
    Ok(Command { tag, body })
}

type R<T> = Result<T, String>;

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
    depth: usize,
}

fn is_atom_char(c: u8) -> bool {
    (0x21..0x7f).contains(&c) && !b"(){%*\"\\]".contains(&c)
}

fn is_astring_char(c: u8) -> bool {
    is_atom_char(c) || c == b']'
}

fn is_list_char(c: u8) -> bool {
    is_astring_char(c) || c == b'%' || c == b'*'
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> R<()> {
        if self.eat(c) {
            Ok(())
        } else {
            // Escaped: the message goes into a BAD response line, where a raw CR or LF
            // would end it early.
            Err(format!("expected '{}'", c.escape_ascii()))
        }
    }

    fn sp(&mut self) -> R<()> {
        self.expect(b' ')
    }

    fn at_end(&self) -> bool {
        matches!(&self.b[self.i.min(self.b.len())..], b"\r\n" | b"\n" | b"")
    }

    fn end(&mut self) -> R<()> {
        if self.at_end() {
            self.i = self.b.len();
            Ok(())
        } else {
            Err("unexpected characters at the end of the command".into())
        }
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.i;
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
        &self.b[start..self.i]
    }

    fn tag(&mut self) -> R<String> {
        let tag = self.take_while(|c| is_astring_char(c) && c != b'+');
        if tag.is_empty() || tag.len() > 64 {
            return Err("missing or invalid tag".into());
        }
        let tag = String::from_utf8_lossy(tag).into_owned();
        self.sp()?;
        Ok(tag)
    }

    fn atom(&mut self) -> R<&'a [u8]> {
        let atom = self.take_while(is_atom_char);
        if atom.is_empty() {
            return Err("expected an atom".into());
        }
        Ok(atom)
    }

    /// An atom, upper-cased, for keywords.
    fn keyword(&mut self) -> R<String> {
        Ok(String::from_utf8_lossy(self.atom()?).to_ascii_uppercase())
    }

    /// Consumes `word` (case-insensitive) if it comes next as a whole atom.
    fn try_word(&mut self, word: &str) -> bool {
        let end = self.i + word.len();
        let matches = self.b.get(self.i..end).is_some_and(|s| s.eq_ignore_ascii_case(word.as_bytes()))
            && !self.b.get(end).copied().is_some_and(is_atom_char);
        if matches {
            self.i = end;
        }
        matches
    }

    fn number64(&mut self) -> R<u64> {
        let digits = self.take_while(|c| c.is_ascii_digit());
        if digits.is_empty() || digits.len() > 19 {
            return Err("expected a number".into());
        }
        std::str::from_utf8(digits).ok().and_then(|d| d.parse().ok()).ok_or_else(|| "number too large".into())
    }

    fn number(&mut self) -> R<u32> {
        u32::try_from(self.number64()?).map_err(|_| "number too large".into())
    }

    fn nz_number(&mut self) -> R<u32> {
        match self.number()? {
            0 => Err("zero is not allowed here".into()),
            n => Ok(n),
        }
    }

    fn quoted(&mut self) -> R<Vec<u8>> {
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

    fn literal(&mut self) -> R<Vec<u8>> {
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
        let data = self.b[self.i..end].to_vec();
        self.i = end;
        Ok(data)
    }

    fn string(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => self.literal(),
            _ => Err("expected a string".into()),
        }
    }

    fn astring(&mut self) -> R<Vec<u8>> {
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

    fn astring_utf8(&mut self) -> R<String> {
        String::from_utf8(self.astring()?).map_err(|_| "invalid UTF-8".into())
    }

    fn nstring(&mut self) -> R<Option<Vec<u8>>> {
        if self.try_word("NIL") {
            return Ok(None);
        }
        self.string().map(Some)
    }

    fn mailbox(&mut self) -> R<Vec<u8>> {
        self.astring()
    }

    fn list_mailbox(&mut self) -> R<Vec<u8>> {
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

    fn seq_number(&mut self) -> R<SeqNum> {
        if self.eat(b'*') {
            Ok(SeqNum::Star)
        } else {
            Ok(SeqNum::Value(self.nz_number()?))
        }
    }

    fn sequence_set(&mut self) -> R<SequenceSet> {
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
                return Ok(SequenceSet::Ranges(ranges));
            }
        }
    }

    fn flag(&mut self) -> R<Flag> {
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
    fn keyword_atom(&mut self) -> R<String> {
        let atom = self.atom()?;
        if atom.len() > 128 {
            return Err("keyword too long".into());
        }
        Ok(String::from_utf8_lossy(atom).into_owned())
    }

    fn flag_list(&mut self) -> R<Vec<Flag>> {
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

    /// A list of items between parentheses, separated by spaces.
    fn paren_list<T>(&mut self, mut item: impl FnMut(&mut Self) -> R<T>) -> R<Vec<T>> {
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

    fn month(&mut self) -> R<u32> {
        let name = self.atom_prefix(3)?;
        const MONTHS: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
        MONTHS
            .iter()
            .position(|m| m.eq_ignore_ascii_case(&name))
            .map(|i| i as u32 + 1)
            .ok_or_else(|| "invalid month".into())
    }

    fn atom_prefix(&mut self, n: usize) -> R<String> {
        let s = self.b.get(self.i..self.i + n).ok_or("truncated date")?;
        self.i += n;
        Ok(String::from_utf8_lossy(s).into_owned())
    }

    fn digits(&mut self, min: usize, max: usize) -> R<u32> {
        let d = self.take_while(|c| c.is_ascii_digit());
        if d.len() < min || d.len() > max {
            return Err("invalid date".into());
        }
        std::str::from_utf8(d).ok().and_then(|d| d.parse().ok()).ok_or_else(|| "invalid date".into())
    }

    /// `date` (SEARCH): d-Mon-yyyy, optionally quoted; the day number since the epoch.
    fn date(&mut self) -> R<i64> {
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
    fn date_time(&mut self) -> R<i64> {
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

    fn command_body(&mut self) -> R<CommandBody> {
        let name = self.keyword()?;
        let body = match name.as_str() {
            "CAPABILITY" => CommandBody::Capability,
            "NOOP" => CommandBody::Noop,
            "LOGOUT" => CommandBody::Logout,
            "STARTTLS" => CommandBody::StartTls,
            "CHECK" => CommandBody::Check,
            "CLOSE" => CommandBody::Close,
            "UNSELECT" => CommandBody::Unselect,
            "IDLE" => CommandBody::Idle,
            "NAMESPACE" => CommandBody::Namespace,
            "EXPUNGE" => CommandBody::Expunge { uids: None },
            "ID" => {
                self.sp()?;
                self.id()?
            }
            "LOGIN" => {
                self.sp()?;
                let username = self.astring()?;
                self.sp()?;
                let password = Zeroizing::new(self.astring()?);
                CommandBody::Login { username, password }
            }
            "AUTHENTICATE" => {
                self.sp()?;
                let mechanism = self.keyword()?;
                let initial_response = if self.eat(b' ') {
                    Some(self.take_while(|c| c.is_ascii_alphanumeric() || b"+/=".contains(&c)).to_vec())
                } else {
                    None
                };
                CommandBody::Authenticate { mechanism, initial_response }
            }
            "ENABLE" => {
                let mut caps = Vec::new();
                while self.eat(b' ') {
                    caps.push(self.keyword()?);
                }
                if caps.is_empty() {
                    return Err("ENABLE needs at least one capability".into());
                }
                CommandBody::Enable(caps)
            }
            "SELECT" | "EXAMINE" => {
                self.sp()?;
                let mailbox = self.mailbox()?;
                let params = if self.eat(b' ') { self.select_params()? } else { SelectParams::default() };
                CommandBody::Select { mailbox, read_only: name == "EXAMINE", params }
            }
            "CREATE" => {
                self.sp()?;
                let mailbox = self.mailbox()?;
                let mut special_use = Vec::new();
                if self.eat(b' ') {
                    self.expect(b'(')?;
                    if !self.try_word("USE") {
                        return Err("expected USE".into());
                    }
                    self.sp()?;
                    special_use = self.paren_list(|p| {
                        p.expect(b'\\')?;
                        Ok(format!("\\{}", p.keyword()?))
                    })?;
                    self.expect(b')')?;
                }
                CommandBody::Create { mailbox, special_use }
            }
            "DELETE" | "SUBSCRIBE" | "UNSUBSCRIBE" | "GETQUOTAROOT" => {
                self.sp()?;
                let mailbox = self.mailbox()?;
                match name.as_str() {
                    "DELETE" => CommandBody::Delete { mailbox },
                    "SUBSCRIBE" => CommandBody::Subscribe { mailbox },
                    "UNSUBSCRIBE" => CommandBody::Unsubscribe { mailbox },
                    _ => CommandBody::GetQuotaRoot { mailbox },
                }
            }
            "GETQUOTA" => {
                self.sp()?;
                CommandBody::GetQuota { root: self.astring()? }
            }
            "SETQUOTA" => {
                self.sp()?;
                let root = self.astring()?;
                self.sp()?;
                let limits = self.paren_list(|p| {
                    let resource = p.keyword()?;
                    p.sp()?;
                    Ok((resource, p.number64()?))
                })?;
                CommandBody::SetQuota { root, limits }
            }
            "RENAME" => {
                self.sp()?;
                let from = self.mailbox()?;
                self.sp()?;
                let to = self.mailbox()?;
                CommandBody::Rename { from, to }
            }
            "LIST" => CommandBody::List(self.list()?),
            "LSUB" => {
                self.sp()?;
                let reference = self.mailbox()?;
                self.sp()?;
                let pattern = self.list_mailbox()?;
                CommandBody::Lsub { reference, pattern }
            }
            "STATUS" => {
                self.sp()?;
                let mailbox = self.mailbox()?;
                self.sp()?;
                let items = self.paren_list(Self::status_item)?;
                if items.is_empty() {
                    return Err("STATUS needs at least one item".into());
                }
                CommandBody::Status { mailbox, items }
            }
            "APPEND" => self.append()?,
            "SEARCH" => CommandBody::Search(self.search(false)?),
            "FETCH" => CommandBody::Fetch(self.fetch(false)?),
            "STORE" => CommandBody::Store(self.store(false)?),
            "COPY" | "MOVE" => {
                self.sp()?;
                let set = self.sequence_set()?;
                self.sp()?;
                let mailbox = self.mailbox()?;
                if name == "COPY" {
                    CommandBody::Copy { uid: false, set, mailbox }
                } else {
                    CommandBody::Move { uid: false, set, mailbox }
                }
            }
            "UID" => {
                self.sp()?;
                let sub = self.keyword()?;
                match sub.as_str() {
                    "FETCH" => CommandBody::Fetch(self.fetch(true)?),
                    "SEARCH" => CommandBody::Search(self.search(true)?),
                    "STORE" => CommandBody::Store(self.store(true)?),
                    "COPY" | "MOVE" => {
                        self.sp()?;
                        let set = self.sequence_set()?;
                        self.sp()?;
                        let mailbox = self.mailbox()?;
                        if sub == "COPY" {
                            CommandBody::Copy { uid: true, set, mailbox }
                        } else {
                            CommandBody::Move { uid: true, set, mailbox }
                        }
                    }
                    "EXPUNGE" => {
                        self.sp()?;
                        CommandBody::Expunge { uids: Some(self.sequence_set()?) }
                    }
                    _ => return Err(format!("unknown UID command {sub}")),
                }
            }
            _ => return Err(format!("unknown command {name}")),
        };
        self.end()?;
        Ok(body)
    }

    fn id(&mut self) -> R<CommandBody> {
        if self.try_word("NIL") {
            return Ok(CommandBody::Id(None));
        }
        self.expect(b'(')?;
        let mut params = Vec::new();
        if !self.eat(b')') {
            loop {
                let key = String::from_utf8_lossy(&self.string()?).into_owned();
                self.sp()?;
                let value = self.nstring()?.map(|v| String::from_utf8_lossy(&v).into_owned());
                params.push((key, value));
                if params.len() > 30 {
                    return Err("too many ID parameters".into());
                }
                if self.eat(b')') {
                    break;
                }
                self.sp()?;
            }
        }
        Ok(CommandBody::Id(Some(params)))
    }

    fn select_params(&mut self) -> R<SelectParams> {
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

    fn seq_match(&mut self) -> R<(SequenceSet, SequenceSet)> {
        self.expect(b'(')?;
        let seqs = self.sequence_set()?;
        self.sp()?;
        let uids = self.sequence_set()?;
        self.expect(b')')?;
        Ok((seqs, uids))
    }

    fn list(&mut self) -> R<ListCommand> {
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

    fn status_item(&mut self) -> R<StatusItem> {
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

    fn append(&mut self) -> R<CommandBody> {
        self.sp()?;
        let mailbox = self.mailbox()?;
        self.sp()?;
        let mut flags = Vec::new();
        if self.peek() == Some(b'(') {
            flags = self.flag_list()?;
            self.sp()?;
        }
        let mut date = None;
        if self.peek() == Some(b'"') {
            date = Some(self.date_time()?);
            self.sp()?;
        }
        // literal8 (RFC 3516, part of IMAP4rev2): the message may hold any octet.
        self.eat(b'~');
        let message = self.literal()?;
        Ok(CommandBody::Append { mailbox, flags, date, message })
    }

    fn search(&mut self, uid: bool) -> R<SearchCommand> {
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

    fn search_key(&mut self) -> R<SearchKey> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("search criteria nested too deeply".into());
        }
        let key = self.search_key_inner();
        self.depth -= 1;
        key
    }

    fn search_key_inner(&mut self) -> R<SearchKey> {
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

    fn fetch(&mut self, uid: bool) -> R<FetchCommand> {
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

    fn fetch_att(&mut self) -> R<FetchItem> {
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

    fn section_part(&mut self) -> R<Vec<u32>> {
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

    fn section(&mut self) -> R<Section> {
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

    fn section_text(&mut self, mime_allowed: bool) -> R<SectionText> {
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

    fn section_binary(&mut self) -> R<Vec<u32>> {
        self.expect(b'[')?;
        let part = self.section_part()?;
        self.expect(b']')?;
        Ok(part)
    }

    fn partial(&mut self) -> R<Option<(u64, u64)>> {
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

    fn store(&mut self, uid: bool) -> R<StoreCommand> {
        self.sp()?;
        let set = self.sequence_set()?;
        self.sp()?;
        let mut unchanged_since = None;
        if self.eat(b'(') {
            if !self.try_word("UNCHANGEDSINCE") {
                return Err("unknown STORE modifier".into());
            }
            self.sp()?;
            unchanged_since = Some(self.number64()?);
            self.expect(b')')?;
            self.sp()?;
        }
        let op = if self.eat(b'+') {
            StoreOp::Add
        } else if self.eat(b'-') {
            StoreOp::Remove
        } else {
            StoreOp::Replace
        };
        let item = self.keyword()?;
        let silent = match item.as_str() {
            "FLAGS" => false,
            "FLAGS.SILENT" => true,
            _ => return Err("expected FLAGS or FLAGS.SILENT".into()),
        };
        self.sp()?;
        let flags = if self.peek() == Some(b'(') {
            self.flag_list()?
        } else {
            let mut flags = vec![self.flag()?];
            while self.eat(b' ') {
                flags.push(self.flag()?);
            }
            flags
        };
        Ok(StoreCommand { uid, set, unchanged_since, op, silent, flags })
    }
}

#[cfg(test)]
mod tests;
