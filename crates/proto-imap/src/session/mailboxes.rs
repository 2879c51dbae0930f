//! Commands on mailboxes as a whole: LIST (with LIST-EXTENDED, LIST-STATUS and SPECIAL-USE),
//! LSUB, CREATE, DELETE, RENAME, (UN)SUBSCRIBE, STATUS, APPEND and QUOTA.

use portcullis_store::{DeliveryError, Flags, Mailbox, MailboxError, MailboxStatus};

use super::{bad, no, offloaded, Answer, Done, Environment, Session, State};
use crate::command::{Flag, ListCommand, StatusItem};
use crate::encode;
use crate::names::{self, Patterns, DELIMITER};

/// Special-use attributes a mailbox may be created with (RFC 6154).
const SPECIAL_USES: [&str; 5] = ["\\Archive", "\\Drafts", "\\Junk", "\\Sent", "\\Trash"];

fn unavailable<E>(_: E) -> Answer {
    no("[UNAVAILABLE] Try again later")
}

fn mailbox_error(e: MailboxError) -> Answer {
    match e {
        MailboxError::NoSuchMailbox => no("[NONEXISTENT] No such mailbox"),
        MailboxError::AlreadyExists => no("[ALREADYEXISTS] Mailbox already exists"),
        MailboxError::HasChildren => no("[HASCHILDREN] Mailbox has children; delete them first"),
        MailboxError::InboxCannotBeDeleted => no("[CANNOT] INBOX cannot be deleted"),
        MailboxError::InvalidName => no("[CANNOT] Invalid mailbox name"),
        MailboxError::TooManyMailboxes(limit) => {
            no(format!("[LIMIT] An account may have at most {limit} mailboxes; delete some first"))
        }
        MailboxError::TooManySubscriptions(limit) => {
            no(format!("[LIMIT] An account may have at most {limit} subscriptions; remove some first"))
        }
        MailboxError::Store(_) => no("[UNAVAILABLE] Try again later"),
    }
}

/// Message flags for APPEND or STORE; \Recent and unknown system flags cannot be set.
pub(super) fn to_store_flags(flags: &[Flag]) -> Result<Flags, Answer> {
    let mut out = Flags::default();
    for flag in flags {
        match flag {
            Flag::Seen => out.system |= Flags::SEEN,
            Flag::Answered => out.system |= Flags::ANSWERED,
            Flag::Flagged => out.system |= Flags::FLAGGED,
            Flag::Deleted => out.system |= Flags::DELETED,
            Flag::Draft => out.system |= Flags::DRAFT,
            Flag::Recent => {}
            Flag::Keyword(k) => {
                if !out.keywords.iter().any(|known| known.eq_ignore_ascii_case(k)) {
                    out.keywords.push(k.clone());
                }
            }
            Flag::Extension(name) => return Err(bad(format!("\\{name} cannot be set"))),
        }
    }
    Ok(out)
}

impl Session {
    /// The patterns of a LIST or LSUB joined to the reference, compiled; `NO [LIMIT]` past
    /// the caps (see [`names::MAX_PATTERN_BYTES`]). A pattern that is no mailbox name in the
    /// client's encoding (invalid modified UTF-7, say) is still a pattern: one that no mailbox
    /// matches (RFC 3501 §6.3.8), so it is left out.
    fn patterns<'p>(&self, reference: &[u8], patterns: impl Iterator<Item = &'p Vec<u8>>) -> Result<Patterns, Answer> {
        let reference = pattern_text(reference, self.utf8);
        let texts: Vec<String> = patterns
            .filter_map(|p| Some(format!("{}{}", reference.as_deref()?, pattern_text(p, self.utf8)?)))
            .collect();
        Patterns::new(&texts).map_err(|_| {
            no(format!(
                "[LIMIT] At most {} bytes of patterns, each with at most {} wildcards",
                names::MAX_PATTERN_BYTES,
                names::MAX_WILDCARDS
            ))
        })
    }

    pub(super) async fn list(&mut self, env: &dyn Environment, list: ListCommand) -> Done {
        if !list.extended && list.patterns.len() == 1 && list.patterns[0].is_empty() {
            // The hierarchy delimiter and root (RFC 9051 §6.3.9).
            self.untagged("LIST (\\Noselect) \"/\" \"\"");
            return Ok(());
        }
        let patterns = self.patterns(&list.reference, list.patterns.iter())?;
        let store = env.store();
        let account = self.account();
        let mut mailboxes = store.mailboxes(account).await.map_err(unavailable)?;
        mailboxes.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        let want_subscriptions = list.subscribed || list.return_subscribed;
        let mut subscriptions =
            if want_subscriptions { store.subscriptions(account).await.map_err(unavailable)? } else { Vec::new() };
        subscriptions.sort_unstable();

        // Candidate names: existing mailboxes, or subscriptions for LIST (SUBSCRIBED); and for
        // RECURSIVEMATCH, parents with a subscribed descendant that the patterns do not list
        // themselves (RFC 5258 §3.5; a descendant that is listed speaks for itself). Matched
        // away from the workers every session shares: a few thousand names of up to 1 KiB.
        let candidates: Vec<String> =
            if list.subscribed { subscriptions.clone() } else { mailboxes.iter().map(|m| m.name.clone()).collect() };
        let recursive = list.recursive_match.then(|| subscriptions.clone());
        let matched = offloaded(env, move || {
            let mut names: Vec<String> = candidates.into_iter().filter(|n| patterns.matches(n)).collect();
            let mut child_info = Vec::new();
            for sub in recursive.iter().flatten().filter(|s| !patterns.matches(s)) {
                child_info.extend(patterns.matching_parents(sub).into_iter().map(str::to_string));
            }
            child_info.sort_unstable();
            child_info.dedup();
            names.sort_unstable();
            child_info.retain(|parent| names.binary_search(parent).is_err());
            names.extend(child_info.iter().cloned());
            names.sort_by(|a, b| (a != "INBOX", a).cmp(&(b != "INBOX", b)));
            names.dedup();
            (names, child_info)
        })
        .await;
        let (names, child_info) = matched.ok_or_else(|| no("[UNAVAILABLE] Try again later"))?;

        for name in names {
            let found = mailboxes.binary_search_by(|m| m.name.as_str().cmp(&name)).ok().map(|i| &mailboxes[i]);
            let special_use = found.and_then(|m| m.special_use.clone());
            if list.special_use_only && special_use.is_none() {
                continue;
            }
            let subscribed = subscriptions.binary_search(&name).is_ok();
            let mut attributes = Vec::new();
            if found.is_none() {
                attributes.push("\\NonExistent".to_string());
            } else if has_children(&mailboxes, &name) {
                attributes.push("\\HasChildren".into());
            } else {
                attributes.push("\\HasNoChildren".into());
            }
            if let Some(special_use) = special_use {
                attributes.push(special_use);
            }
            if want_subscriptions && subscribed {
                attributes.push("\\Subscribed".into());
            }
            let mut line = format!("* LIST ({}) \"/\" ", attributes.join(" ")).into_bytes();
            encode::mailbox(&mut line, &name, self.utf8);
            if !subscribed && child_info.binary_search(&name).is_ok() {
                line.extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
            }
            line.extend_from_slice(b"\r\n");
            self.out.extend_from_slice(&line);
            if let (false, Some(mailbox)) = (list.return_status.is_empty(), found) {
                let status = store.mailbox_status(mailbox.id).await.map_err(unavailable)?;
                self.status_line(&name, &status, &list.return_status);
            }
        }
        Ok(())
    }

    pub(super) async fn lsub(&mut self, env: &dyn Environment, reference: &[u8], pattern: &[u8]) -> Done {
        let patterns = self.patterns(reference, std::iter::once(&pattern.to_vec()))?;
        let store = env.store();
        let account = self.account();
        let mut mailboxes: Vec<String> =
            store.mailboxes(account).await.map_err(unavailable)?.into_iter().map(|m| m.name).collect();
        mailboxes.sort_unstable();
        let mut subscriptions = store.subscriptions(account).await.map_err(unavailable)?;
        subscriptions.sort_unstable();
        // (name, selectable): the subscriptions the pattern matches, and, for one it does not,
        // the parents it does match, as \Noselect: "%" on "foo" finds "foo" when only
        // "foo/bar" is subscribed (RFC 3501 §6.3.9). Matched as LIST matches, off the workers.
        let listed = offloaded(env, move || {
            let mut listed: Vec<(String, bool)> = Vec::new();
            for name in &subscriptions {
                if patterns.matches(name) {
                    listed.push((name.clone(), mailboxes.binary_search(name).is_ok()));
                    continue;
                }
                for parent in patterns.matching_parents(name) {
                    if subscriptions.binary_search_by(|s| s.as_str().cmp(parent)).is_err() {
                        listed.push((parent.to_string(), false));
                    }
                }
            }
            listed.sort_by(|(a, _), (b, _)| (a != "INBOX", a).cmp(&(b != "INBOX", b)));
            listed.dedup_by(|a, b| a.0 == b.0);
            listed
        })
        .await
        .ok_or_else(|| no("[UNAVAILABLE] Try again later"))?;
        for (name, selectable) in listed {
            let attributes = if selectable { "" } else { "\\Noselect" };
            let mut line = format!("* LSUB ({attributes}) \"/\" ").into_bytes();
            encode::mailbox(&mut line, &name, self.utf8);
            line.extend_from_slice(b"\r\n");
            self.out.extend_from_slice(&line);
        }
        Ok(())
    }

    pub(super) async fn create(&mut self, env: &dyn Environment, raw: &[u8], special_use: Vec<String>) -> Done {
        let name = self.mailbox_name(raw)?;
        let name = name.trim_end_matches(DELIMITER).to_string();
        if name == "INBOX" {
            return Err(no("[ALREADYEXISTS] INBOX always exists"));
        }
        let special_use = match special_use.as_slice() {
            [] => None,
            [one] => Some(
                SPECIAL_USES
                    .iter()
                    .find(|s| s.eq_ignore_ascii_case(one))
                    .copied()
                    .ok_or_else(|| no("[USEATTR] Unsupported special-use attribute"))?,
            ),
            _ => return Err(no("[USEATTR] Only one special-use attribute per mailbox")),
        };
        env.store().create_mailbox(self.account(), &name, special_use).await.map_err(mailbox_error)?;
        Ok(())
    }

    pub(super) async fn delete(&mut self, env: &dyn Environment, raw: &[u8]) -> Done {
        let name = self.mailbox_name(raw)?;
        if let State::Selected(view) = &self.state {
            if view.name == name {
                return Err(no("[INUSE] The mailbox is selected; select another one first"));
            }
        }
        env.store().delete_mailbox(self.account(), &name).await.map_err(mailbox_error)
    }

    pub(super) async fn rename(&mut self, env: &dyn Environment, from: &[u8], to: &[u8]) -> Done {
        let from = self.mailbox_name(from)?;
        let to = self.mailbox_name(to)?;
        env.store().rename_mailbox(self.account(), &from, &to).await.map_err(mailbox_error)
    }

    pub(super) async fn subscribe(&mut self, env: &dyn Environment, raw: &[u8], subscribed: bool) -> Done {
        let name = self.mailbox_name(raw)?;
        env.store().set_subscribed(self.account(), &name, subscribed).await.map_err(mailbox_error)
    }

    pub(super) async fn status(&mut self, env: &dyn Environment, raw: &[u8], items: &[StatusItem]) -> Done {
        let name = self.mailbox_name(raw)?;
        let store = env.store();
        let mailbox = store
            .mailbox(self.account(), &name)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| no("[NONEXISTENT] No such mailbox"))?;
        let status = store.mailbox_status(mailbox.id).await.map_err(unavailable)?;
        if items.contains(&StatusItem::HighestModSeq) {
            self.enable_condstore();
        }
        self.status_line(&name, &status, items);
        Ok(())
    }

    fn status_line(&mut self, name: &str, status: &MailboxStatus, items: &[StatusItem]) {
        let values: Vec<String> = items
            .iter()
            .map(|item| match item {
                StatusItem::Messages => format!("MESSAGES {}", status.messages),
                StatusItem::Recent => format!("RECENT {}", status.recent),
                StatusItem::UidNext => format!("UIDNEXT {}", status.uidnext),
                StatusItem::UidValidity => format!("UIDVALIDITY {}", status.uidvalidity),
                StatusItem::Unseen => format!("UNSEEN {}", status.unseen),
                StatusItem::Deleted => format!("DELETED {}", status.deleted),
                StatusItem::Size => format!("SIZE {}", status.size),
                StatusItem::HighestModSeq => format!("HIGHESTMODSEQ {}", status.highestmodseq),
            })
            .collect();
        let mut line = b"* STATUS ".to_vec();
        encode::mailbox(&mut line, name, self.utf8);
        line.extend_from_slice(format!(" ({})\r\n", values.join(" ")).as_bytes());
        self.out.extend_from_slice(&line);
    }

    pub(super) async fn append(
        &mut self,
        env: &dyn Environment,
        raw: &[u8],
        flags: Vec<Flag>,
        date: Option<i64>,
        message: Vec<u8>,
    ) -> Done {
        let name = self.mailbox_name(raw)?;
        if message.len() as u64 > self.config.max_message_size {
            return Err(no("[TOOBIG] Message too large"));
        }
        if message.is_empty() {
            return Err(no("[CANNOT] Empty message"));
        }
        // NUL can only come in a literal8 part (RFC 3516); no IMAP string could send it back.
        // Re-encoding means parsing the message: off the workers.
        let (message, nul) = if message.contains(&0) {
            offloaded(env, move || {
                let nul = portcullis_mime::encode_nul_parts(&message);
                (message, nul)
            })
            .await
            .ok_or_else(|| no("[UNAVAILABLE] Try again later"))?
        } else {
            (message, portcullis_mime::NulBytes::Absent)
        };
        let message = match nul {
            portcullis_mime::NulBytes::Absent => message,
            portcullis_mime::NulBytes::Encoded(encoded) => encoded,
            portcullis_mime::NulBytes::Unencodable => {
                return Err(no("[CANNOT] NUL bytes are allowed only in the body of a binary part"))
            }
        };
        if message.len() as u64 > self.config.max_message_size {
            return Err(no("[TOOBIG] Message too large once its binary parts are encoded"));
        }
        let flags = to_store_flags(&flags)?;
        let store = env.store();
        let mailbox = store
            .mailbox(self.account(), &name)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| no("[TRYCREATE] No such mailbox"))?;
        let date = date.unwrap_or_else(now);
        let uid = match store.append(mailbox.id, message, flags, date).await {
            Ok(uid) => uid,
            Err(DeliveryError::QuotaExceeded(_)) => return Err(no("[OVERQUOTA] Quota exceeded")),
            Err(DeliveryError::Store(_)) => return Err(no("[UNAVAILABLE] Try again later")),
        };
        self.code = Some(format!("[APPENDUID {} {uid}]", mailbox.uidvalidity));
        if let State::Selected(view) = &mut self.state {
            if view.id == mailbox.id {
                view.stale = true;
            }
        }
        Ok(())
    }

    pub(super) async fn get_quota_root(&mut self, env: &dyn Environment, raw: &[u8]) -> Done {
        let name = self.mailbox_name(raw)?;
        let store = env.store();
        store
            .mailbox(self.account(), &name)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| no("[NONEXISTENT] No such mailbox"))?;
        let (used, limit) = store.quota(self.account()).await.map_err(unavailable)?;
        let mut line = b"* QUOTAROOT ".to_vec();
        encode::mailbox(&mut line, &name, self.utf8);
        if limit.is_some() {
            line.extend_from_slice(b" \"\"");
        }
        line.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(&line);
        if let Some(limit) = limit {
            self.quota_line(used, limit);
        }
        Ok(())
    }

    pub(super) async fn get_quota(&mut self, env: &dyn Environment, root: &[u8]) -> Done {
        let (used, limit) = env.store().quota(self.account()).await.map_err(unavailable)?;
        match (root.is_empty(), limit) {
            (true, Some(limit)) => {
                self.quota_line(used, limit);
                Ok(())
            }
            _ => Err(no("[NONEXISTENT] No such quota root")),
        }
    }

    /// STORAGE is counted in units of 1024 octets (RFC 9208 §5.1).
    fn quota_line(&mut self, used: u64, limit: u64) {
        self.untagged(&format!("QUOTA \"\" (STORAGE {} {})", used.div_ceil(1024), limit / 1024));
    }
}

/// A LIST reference or pattern as text to match names against; `None` when it cannot name
/// anything in the client's encoding: not UTF-8, 8-bit before UTF-8 is enabled, or invalid
/// modified UTF-7 (RFC 3501 §5.1.3).
fn pattern_text(raw: &[u8], utf8: bool) -> Option<String> {
    let text = std::str::from_utf8(raw).ok()?;
    if utf8 || !text.contains('&') {
        return (utf8 || text.is_ascii()).then(|| text.to_string());
    }
    portcullis_mime::utf7::decode(text)
}

/// Whether a mailbox below `name` exists, in the list sorted by name: its descendants sort
/// right after "name/" (see `portcullis_store`'s `descendant_range`).
fn has_children(sorted: &[Mailbox], name: &str) -> bool {
    let prefix = format!("{name}{DELIMITER}");
    let at = sorted.partition_point(|m| m.name.as_str() < prefix.as_str());
    sorted.get(at).is_some_and(|m| m.name.starts_with(&prefix))
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
