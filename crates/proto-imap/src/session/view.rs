//! The selected mailbox as this client knows it: the message sequence (numbers to UIDs), the
//! flags it was told, and the modseq up to which it is current. Changes made by others reach
//! the client only through [`Session::sync`], which never renumbers messages while a FETCH,
//! STORE or SEARCH is being answered (RFC 9051 §7.5.1).

use portcullis_store::{Flags, MailboxId, MessageIndex, MessageList};

use super::recent::Recent;
use super::{bad, no, yield_now, Answer, Done, Environment, Session, State, MESSAGES_PER_YIELD};
use crate::command::{SelectParams, SequenceSet};
use crate::encode;

pub(crate) struct View {
    pub id: MailboxId,
    pub name: String,
    pub read_only: bool,
    pub uidvalidity: u32,
    pub uidnext: u32,
    /// Message sequence number n is at position n - 1; UIDs ascend. Shared with the store
    /// and other sessions until changed (see [`MessageList`]).
    pub messages: MessageList,
    /// Every change up to this modseq is reflected in `messages`.
    pub modseq: u64,
    /// Keywords announced in FLAGS.
    pub keywords: Vec<String>,
    /// Something changed since the last sync.
    pub stale: bool,
    /// Removed from the store, but the client has not been told yet.
    pub vanished: Vec<u32>,
    /// The messages that are \Recent in this session (none with IMAP4rev2).
    pub recent: Recent,
    /// New mail was seen that nobody may have claimed as \Recent yet (see `claim_recent`).
    pub claim_due: bool,
}

impl View {
    pub fn position(&self, uid: u32) -> Option<usize> {
        self.messages.position(uid)
    }

    pub fn largest_uid(&self) -> u32 {
        self.messages.last_uid().unwrap_or(0)
    }

    /// Indexes (0-based, ascending, unique) named by a set of sequence numbers. The set's
    /// ranges are disjoint and ascending (see [`crate::command::Ranges`]): this costs what it
    /// names, however the client spelled it.
    pub fn by_sequence(&self, set: &SequenceSet, saved: &[u32]) -> Result<Vec<usize>, Answer> {
        if *set == SequenceSet::Saved {
            return Ok(self.by_uids(saved));
        }
        let count = self.messages.len() as u32;
        if count == 0 {
            // "1:*" on an empty mailbox names nothing rather than an error.
            return Ok(Vec::new());
        }
        let mut chosen = Vec::new();
        for (lo, hi) in set.ranges(count) {
            if lo == 0 || hi > count {
                return Err(bad("Invalid message sequence number"));
            }
            chosen.extend((lo - 1) as usize..hi as usize);
        }
        Ok(chosen)
    }

    /// Indexes (ascending, unique) of the messages whose UIDs are in `set` (UIDs not present
    /// are ignored).
    pub fn by_uid_set(&self, set: &SequenceSet, saved: &[u32]) -> Vec<usize> {
        if *set == SequenceSet::Saved {
            return self.by_uids(saved);
        }
        let largest = self.largest_uid();
        let mut chosen = Vec::new();
        for (lo, hi) in set.ranges(largest) {
            let start = self.messages.partition_point(lo);
            let end = hi.checked_add(1).map_or(self.messages.len(), |next| self.messages.partition_point(next));
            chosen.extend(start..end.max(start));
        }
        chosen
    }

    fn by_uids(&self, uids: &[u32]) -> Vec<usize> {
        let mut indexes: Vec<usize> = uids.iter().filter_map(|&u| self.position(u)).collect();
        indexes.sort_unstable();
        indexes.dedup();
        indexes
    }
}

impl Session {
    /// A CONDSTORE-enabling command (RFC 7162 §3.1: FETCH or SEARCH with MODSEQ, STORE
    /// UNCHANGEDSINCE, STATUS HIGHESTMODSEQ…). The first one in the selected state tells the
    /// client the mailbox's HIGHESTMODSEQ, which it has not heard at SELECT.
    pub(super) fn enable_condstore(&mut self) {
        if std::mem::replace(&mut self.condstore, true) {
            return;
        }
        if let State::Selected(view) = &self.state {
            let modseq = view.modseq.max(1);
            self.untagged(&format!("OK [HIGHESTMODSEQ {modseq}] Highest"));
        }
    }

    pub(super) fn account(&self) -> i64 {
        self.principal.as_ref().map(|p| p.account).unwrap_or(-1)
    }

    /// The store name for a name the client sent.
    pub(super) fn mailbox_name(&self, raw: &[u8]) -> Result<String, Answer> {
        crate::names::decode(raw, self.utf8).ok_or_else(|| no("[CANNOT] Invalid mailbox name"))
    }

    pub(super) fn view(&self) -> Result<&View, Answer> {
        match &self.state {
            State::Selected(view) => Ok(view),
            _ => Err(bad("Select a mailbox first")),
        }
    }

    pub(super) fn view_mut(&mut self) -> Result<&mut View, Answer> {
        match &mut self.state {
            State::Selected(view) => Ok(view),
            _ => Err(bad("Select a mailbox first")),
        }
    }

    pub(super) async fn select(
        &mut self,
        env: &dyn Environment,
        raw: &[u8],
        read_only: bool,
        params: SelectParams,
    ) -> Done {
        if params.qresync.is_some() && !self.qresync {
            return Err(bad("Enable QRESYNC first"));
        }
        // A failed SELECT leaves no mailbox selected (RFC 9051 §6.3.2).
        if matches!(self.state, State::Selected(_)) {
            self.state = State::Authenticated;
            if self.qresync {
                self.untagged("OK [CLOSED] Previous mailbox closed");
            }
        }
        if params.condstore {
            self.condstore = true;
        }
        let name = self.mailbox_name(raw)?;
        // The row, keywords and messages in one snapshot, as of the row's modseq: later
        // changes are picked up by the next sync.
        let portcullis_store::SelectedMailbox { mailbox, keywords, messages } = env
            .store()
            .select_mailbox(self.account(), &name)
            .await
            .map_err(|_| no("[UNAVAILABLE] Try again later"))?
            .ok_or_else(|| no("[NONEXISTENT] No such mailbox"))?;
        let uidnext = mailbox.uidnext.max(messages.last_uid().map(|u| u + 1).unwrap_or(1));
        let mut recent = Recent::default();
        if !self.rev2 && read_only {
            recent = Recent::from_on(mailbox.recent_from);
        } else if !self.rev2 && mailbox.recent_from < uidnext {
            // New mail since the last session looked: it is recent here, and only here. What
            // arrives between the snapshot above and this claim is claimed too, and reaches the
            // client (as recent) with the next sync.
            let claimed =
                env.store().claim_recent(mailbox.id).await.map_err(|_| no("[UNAVAILABLE] Try again later"))?;
            if let Some((from, to)) = claimed {
                recent.claimed(from, to);
            }
        }
        let view = View {
            id: mailbox.id,
            name: mailbox.name.clone(),
            read_only,
            uidvalidity: mailbox.uidvalidity,
            uidnext,
            modseq: mailbox.highestmodseq,
            messages,
            keywords,
            stale: false,
            vanished: Vec::new(),
            recent,
            claim_due: false,
        };

        self.flags_responses(&view);
        self.untagged(&format!("{} EXISTS", view.messages.len()));
        if !self.rev2 {
            self.untagged(&format!("{} RECENT", view.recent.count(&view.messages)));
            let first_unseen = view.messages.first_where(|flags| flags & Flags::SEEN == 0);
            if let Some(i) = first_unseen {
                self.untagged(&format!("OK [UNSEEN {}] First unseen", i + 1));
            }
        }
        self.untagged(&format!("OK [UIDVALIDITY {}] UIDs valid", view.uidvalidity));
        self.untagged(&format!("OK [UIDNEXT {}] Predicted next UID", view.uidnext));
        if self.condstore {
            self.untagged(&format!("OK [HIGHESTMODSEQ {}] Highest", view.modseq.max(1)));
        }
        if self.rev2 {
            let mut line = b"* LIST () \"/\" ".to_vec();
            encode::mailbox(&mut line, &view.name, true);
            line.extend_from_slice(b"\r\n");
            self.out.extend_from_slice(&line);
        }
        if let Some(q) = &params.qresync {
            if q.uidvalidity == view.uidvalidity {
                self.qresync_select(env, &view, q).await?;
            }
        }
        self.code = Some(if read_only { "[READ-ONLY]".into() } else { "[READ-WRITE]".into() });
        self.state = State::Selected(Box::new(view));
        Ok(())
    }

    /// FLAGS and PERMANENTFLAGS: at SELECT, and again whenever a keyword joins the mailbox.
    pub(super) fn flags_responses(&mut self, view: &View) {
        let keywords: String = view.keywords.iter().map(|k| format!(" {k}")).collect();
        self.untagged(&format!("FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft{keywords})"));
        if view.read_only {
            self.untagged("OK [PERMANENTFLAGS ()] Read-only mailbox");
        } else {
            self.untagged(&format!(
                "OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft{keywords} \\*)] Flags permitted"
            ));
        }
    }

    /// RFC 7162 §3.2.5: what changed since the client's last known modseq.
    async fn qresync_select(&mut self, env: &dyn Environment, view: &View, q: &crate::command::Qresync) -> Done {
        let changes =
            env.store().changes_since(view.id, q.modseq).await.map_err(|_| no("[UNAVAILABLE] Try again later"))?;
        let mut vanished: Vec<u32> = changes
            .expunged
            .iter()
            .copied()
            .filter(|&uid| q.known_uids.as_ref().is_none_or(|k| k.contains(uid, u32::MAX)))
            .collect();
        vanished.sort_unstable();
        vanished.dedup();
        if !vanished.is_empty() {
            self.untagged(&format!("VANISHED (EARLIER) {}", encode::compact_set(&vanished)));
        }
        for (i, m) in view.messages.iter().enumerate() {
            if m.modseq > q.modseq {
                self.flag_fetch(i + 1, &m.to_index(), view.recent.contains(m.uid), true);
            }
        }
        Ok(())
    }

    /// `* n FETCH (UID u FLAGS (...) MODSEQ (m))`.
    pub(super) fn flag_fetch(&mut self, seq: usize, message: &MessageIndex, recent: bool, with_modseq: bool) {
        let mut line = format!("* {seq} FETCH (UID {} FLAGS ", message.uid).into_bytes();
        encode::flags(&mut line, &message.flags, recent);
        if with_modseq || self.condstore {
            line.extend_from_slice(format!(" MODSEQ ({})", message.modseq).as_bytes());
        }
        line.extend_from_slice(b")\r\n");
        self.out.extend_from_slice(&line);
    }

    /// Tells the client what others changed: flag updates and new messages always, removals
    /// only when `allow_expunge` (never while answering FETCH, STORE or SEARCH). `force` checks
    /// the store even when no change was announced.
    pub(super) async fn sync(&mut self, env: &dyn Environment, allow_expunge: bool, force: bool) -> Done {
        let State::Selected(view) = &mut self.state else { return Ok(()) };
        let mut view = std::mem::replace(view, Box::new(View::placeholder()));
        let result = self.sync_view(env, &mut view, allow_expunge, force).await;
        self.state = State::Selected(view);
        result
    }

    async fn sync_view(&mut self, env: &dyn Environment, view: &mut View, allow_expunge: bool, force: bool) -> Done {
        if view.stale || force {
            view.stale = false;
            let changes = env
                .store()
                .changes_since(view.id, view.modseq)
                .await
                .map_err(|_| no("[UNAVAILABLE] Try again later"))?;
            let largest = view.largest_uid();
            // Keywords first: no FETCH may name a keyword before a FLAGS response has
            // announced it (RFC 3501 §7.2.6, RFC 9051 §7.3.5).
            let mut new_keywords = false;
            for change in &changes.changed {
                if change.uid > largest || view.position(change.uid).is_some() {
                    new_keywords |= learn_keywords(&mut view.keywords, &change.flags.keywords);
                }
            }
            if new_keywords {
                self.flags_responses(view);
            }
            let mut added = Vec::new();
            for (n, change) in changes.changed.into_iter().enumerate() {
                if n > 0 && n % MESSAGES_PER_YIELD == 0 {
                    yield_now().await;
                }
                match view.position(change.uid) {
                    Some(i) => {
                        let known = view.messages.at(i);
                        if known.system != change.flags.system || known.keywords != change.flags.keywords {
                            view.messages.set(i, &change);
                            self.flag_fetch(i + 1, &change, view.recent.contains(change.uid), false);
                        } else {
                            view.messages.set_modseq(i, change.modseq);
                        }
                    }
                    None if change.uid > largest => added.push(change),
                    None => {}
                }
            }
            // Sorted and deduplicated once, not checked one by one: another session may
            // have removed a whole mailbox's worth.
            let before = view.vanished.len();
            view.vanished.extend(changes.expunged.into_iter().filter(|&uid| view.messages.position(uid).is_some()));
            if view.vanished.len() > before {
                view.vanished.sort_unstable();
                view.vanished.dedup();
            }
            added.sort_by_key(|m| m.uid);
            if allow_expunge {
                self.announce_vanished(view);
            }
            if !added.is_empty() {
                view.uidnext = view.uidnext.max(added.last().map(|m| m.uid + 1).unwrap_or(0));
                for m in &added {
                    view.messages.push(m);
                }
                // New mail nobody has been told of yet is recent here (RFC 3501 §2.3.2).
                view.claim_due |= added.last().is_some_and(|m| m.uid >= changes.recent_from);
                self.claim_recent(env, view).await?;
                self.untagged(&format!("{} EXISTS", view.messages.len()));
                // With the claim put off (IDLE), RECENT comes once it is made.
                if !self.rev2 && !view.claim_due {
                    self.untagged(&format!("{} RECENT", view.recent.count(&view.messages)));
                }
            }
            view.modseq = view.modseq.max(changes.highestmodseq);
        } else if allow_expunge {
            self.announce_vanished(view);
        }
        if view.claim_due && self.claim_recent(env, view).await? {
            self.untagged(&format!("{} RECENT", view.recent.count(&view.messages)));
        }
        Ok(())
    }

    /// Takes the new mail nobody has been told of as \Recent, if due and allowed (not with
    /// IMAP4rev2, not in EXAMINE); whether this took any. Not while IDLE: the EXISTS goes out
    /// at once, and the claim, a write, waits for DONE (the client cannot look at flags
    /// before it anyway).
    async fn claim_recent(&mut self, env: &dyn Environment, view: &mut View) -> Result<bool, Answer> {
        if !view.claim_due || self.idling() {
            return Ok(false);
        }
        view.claim_due = false;
        if self.rev2 || view.read_only {
            return Ok(false);
        }
        let claimed = env.store().claim_recent(view.id).await.map_err(|_| no("[UNAVAILABLE] Try again later"))?;
        if let Some((from, to)) = claimed {
            view.recent.claimed(from, to);
        }
        Ok(claimed.is_some())
    }

    /// Sends EXPUNGE (or VANISHED with QRESYNC) for messages removed meanwhile, and forgets them.
    pub(super) fn announce_vanished(&mut self, view: &mut View) {
        if view.vanished.is_empty() {
            return;
        }
        let mut gone = std::mem::take(&mut view.vanished);
        gone.sort_unstable();
        self.remove_from_view(view, &gone);
    }

    /// Removes `uids` (ascending) from the view, telling the client.
    pub(super) fn remove_from_view(&mut self, view: &mut View, uids: &[u32]) {
        if self.qresync {
            let present: Vec<u32> = uids.iter().copied().filter(|&u| view.position(u).is_some()).collect();
            if !present.is_empty() {
                self.untagged(&format!("VANISHED {}", encode::compact_set(&present)));
            }
            view.messages.remove_uids(uids);
            return;
        }
        // Highest first, so that each number is still the one the client knows.
        let mut positions: Vec<usize> = uids.iter().filter_map(|&u| view.position(u)).collect();
        positions.sort_unstable();
        for &i in positions.iter().rev() {
            self.untagged(&format!("{} EXPUNGE", i + 1));
        }
        view.messages.remove_uids(uids);
    }
}

impl View {
    /// Stands in while a view is borrowed out of the session state.
    pub(super) fn placeholder() -> View {
        View {
            id: 0,
            name: String::new(),
            read_only: true,
            uidvalidity: 0,
            uidnext: 0,
            messages: MessageList::new(),
            modseq: 0,
            keywords: Vec::new(),
            stale: false,
            vanished: Vec::new(),
            recent: Recent::default(),
            claim_due: false,
        }
    }
}

/// Adds the keywords not yet in `known` (compared ignoring case); whether there were any.
pub(super) fn learn_keywords(known: &mut Vec<String>, keywords: &[String]) -> bool {
    let mut learned = false;
    for k in keywords {
        if !known.iter().any(|have| have.eq_ignore_ascii_case(k)) {
            known.push(k.clone());
            learned = true;
        }
    }
    learned
}
