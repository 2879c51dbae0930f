//! The command dispatcher: reads the command name and hands its arguments to the parser of their
//! kind, and parses in place the commands whose arguments are used nowhere else (ID, LOGIN,
//! AUTHENTICATE, ENABLE, CREATE, APPEND, STORE, ...).

use super::{Parser, R};
use crate::command::*;
use zeroize::Zeroizing;

impl Parser<'_> {
    pub(super) fn command_body(&mut self) -> R<CommandBody> {
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

    pub(super) fn id(&mut self) -> R<CommandBody> {
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

    pub(super) fn append(&mut self) -> R<CommandBody> {
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
        // literal8 (RFC 3516, part of IMAP4rev2): the message may hold any octet. Not copied
        // here: the caller takes it out of the command (see `parse_command_owned`).
        self.eat(b'~');
        self.append_message = Some(self.literal_span()?);
        Ok(CommandBody::Append { mailbox, flags, date, message: Vec::new() })
    }

    pub(super) fn store(&mut self, uid: bool) -> R<StoreCommand> {
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
