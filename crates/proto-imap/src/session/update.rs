//! Commands that change messages: STORE (with UNCHANGEDSINCE), COPY, MOVE, EXPUNGE, UID
//! EXPUNGE, and CLOSE/UNSELECT.

use portcullis_store::{DeliveryError, FlagOp, Flags};

use super::mailboxes::to_store_flags;
use super::view::learn_keywords;
use super::{no, yield_now, Answer, Done, Environment, Progress, Session, State, MESSAGES_PER_YIELD};
use crate::command::{SequenceSet, StoreCommand, StoreOp};
use crate::encode;

fn unavailable<E>(_: E) -> Answer {
    no("[UNAVAILABLE] Try again later")
}

impl Session {
    fn writable(&self) -> Done {
        if self.view()?.read_only {
            return Err(no("[READ-ONLY] The mailbox is read-only (EXAMINE)"));
        }
        Ok(())
    }

    pub(super) async fn store(
        &mut self,
        env: &dyn Environment,
        tag: &str,
        command: StoreCommand,
    ) -> Result<Progress, Answer> {
        self.writable()?;
        self.sync(env, command.uid, false).await?;
        let flags = to_store_flags(&command.flags)?;
        let saved = std::mem::take(&mut self.saved);
        let chosen = {
            let view = self.view()?;
            if command.uid {
                Ok(view.by_uid_set(&command.set, &saved))
            } else {
                view.by_sequence(&command.set, &saved)
            }
        };
        self.saved = saved;
        let indexes = chosen?;
        if command.unchanged_since.is_some() {
            self.enable_condstore();
        }
        let (mailbox, uids) = {
            let view = self.view()?;
            (view.id, indexes.iter().map(|&i| view.messages.uid(i)).collect::<Vec<u32>>())
        };
        let op = match command.op {
            StoreOp::Add => FlagOp::Add,
            StoreOp::Remove => FlagOp::Remove,
            StoreOp::Replace => FlagOp::Replace,
        };
        let update =
            env.store().store_flags(mailbox, &uids, op, &flags, command.unchanged_since).await.map_err(unavailable)?;
        let mut changed = Vec::new();
        let mut new_keywords = false;
        {
            let view = self.view_mut()?;
            for message in update.updated {
                if let Some(i) = view.position(message.uid) {
                    new_keywords |= learn_keywords(&mut view.keywords, &message.flags.keywords);
                    view.messages.set(i, &message);
                    changed.push(i);
                }
            }
        }
        // A new keyword is announced before any FETCH names it (RFC 3501 §7.2.6).
        if new_keywords {
            if let State::Selected(view) = &mut self.state {
                let view = std::mem::replace(view, Box::new(placeholder()));
                self.flags_responses(&view);
                self.state = State::Selected(view);
            }
        }
        // Without .SILENT the client hears the new flags of every message it named; with
        // CONDSTORE it also hears the new modseq of those that changed (RFC 7162 §3.1.3).
        let report: Vec<usize> = if command.silent {
            if self.condstore {
                changed.clone()
            } else {
                vec![]
            }
        } else {
            indexes.clone()
        };
        for (n, i) in report.into_iter().enumerate() {
            if n > 0 && n % MESSAGES_PER_YIELD == 0 {
                yield_now().await;
            }
            let view = self.view()?;
            let message = view.messages.get(i);
            let recent = view.recent.contains(message.uid);
            if command.silent {
                self.out.extend_from_slice(format!("* {} FETCH (MODSEQ ({}))\r\n", i + 1, message.modseq).as_bytes());
            } else {
                self.flag_fetch(i + 1, &message, recent, command.unchanged_since.is_some());
            }
        }
        self.sync(env, command.uid, false).await?;
        if update.modified.is_empty() {
            self.tagged(tag, "OK STORE completed");
        } else {
            let view = self.view()?;
            let numbers: Vec<u32> = if command.uid {
                update.modified.clone()
            } else {
                update.modified.iter().filter_map(|&u| view.position(u).map(|i| i as u32 + 1)).collect()
            };
            let set = encode::compact_set(&numbers);
            self.tagged(tag, &format!("OK [MODIFIED {set}] Conditional STORE failed for some messages"));
        }
        Ok(self.after_command())
    }

    pub(super) async fn copy(
        &mut self,
        env: &dyn Environment,
        tag: &str,
        uid: bool,
        set: &SequenceSet,
        target: &[u8],
        is_move: bool,
    ) -> Result<Progress, Answer> {
        if is_move {
            self.writable()?;
        }
        self.sync(env, true, false).await?;
        let name = self.mailbox_name(target)?;
        let store = env.store();
        let destination = store
            .mailbox(self.account(), &name)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| no("[TRYCREATE] No such mailbox"))?;
        let saved = std::mem::take(&mut self.saved);
        let chosen = {
            let view = self.view()?;
            if uid {
                Ok(view.by_uid_set(set, &saved))
            } else {
                view.by_sequence(set, &saved)
            }
        };
        self.saved = saved;
        let indexes = chosen?;
        let (source, uids) = {
            let view = self.view()?;
            (view.id, indexes.iter().map(|&i| view.messages.uid(i)).collect::<Vec<u32>>())
        };
        if uids.is_empty() {
            self.tagged(tag, &format!("OK {} completed", if is_move { "MOVE" } else { "COPY" }));
            return Ok(self.after_command());
        }
        // Into the selected mailbox itself: the copies are new messages the client hears of
        // in this command's answer (EXISTS, and for MOVE after the EXPUNGEs).
        if destination.id == source {
            self.view_mut()?.stale = true;
        }
        let mapping = if is_move {
            store.move_messages(source, &uids, destination.id).await.map_err(unavailable)?
        } else {
            match store.copy_messages(source, &uids, destination.id).await {
                Ok(mapping) => mapping,
                Err(DeliveryError::QuotaExceeded(_)) => return Err(no("[OVERQUOTA] Quota exceeded")),
                Err(DeliveryError::Store(_)) => return Err(no("[UNAVAILABLE] Try again later")),
            }
        };
        let code = if mapping.is_empty() {
            String::new()
        } else {
            let from: Vec<u32> = mapping.iter().map(|m| m.0).collect();
            let to: Vec<u32> = mapping.iter().map(|m| m.1).collect();
            // Sources ascend; destinations were assigned in the same order, so the two sets
            // correspond element by element (RFC 4315 §4).
            format!(
                "[COPYUID {} {} {}] ",
                destination.uidvalidity,
                encode::compact_set(&from),
                encode::compact_set(&to)
            )
        };
        if is_move {
            // RFC 6851 §4.3: the COPYUID goes in an untagged OK before the expunges.
            if !code.is_empty() {
                self.untagged(&format!("OK {code}Moved"));
            }
            let moved: Vec<u32> = mapping.iter().map(|m| m.0).collect();
            if let State::Selected(view) = &mut self.state {
                let mut view = std::mem::replace(view, Box::new(placeholder()));
                // `moved` ascends (source UID order): looked up, not scanned.
                view.vanished.retain(|u| moved.binary_search(u).is_err());
                self.remove_from_view(&mut view, &moved);
                self.state = State::Selected(view);
            }
            self.sync(env, true, false).await?;
            self.tagged(tag, "OK MOVE completed");
        } else {
            self.sync(env, true, false).await?;
            self.tagged(tag, &format!("OK {code}COPY completed"));
        }
        Ok(self.after_command())
    }

    pub(super) async fn expunge(&mut self, env: &dyn Environment, uids: Option<&SequenceSet>) -> Done {
        self.writable()?;
        let (mailbox, restrict) = {
            let view = self.view()?;
            let restrict = uids.map(|set| {
                let indexes = view.by_uid_set(set, &self.saved);
                indexes.iter().map(|&i| view.messages.uid(i)).collect::<Vec<u32>>()
            });
            (view.id, restrict)
        };
        let removed = env.store().expunge_deleted(mailbox, restrict.as_deref()).await.map_err(unavailable)?;
        if let State::Selected(view) = &mut self.state {
            let mut view = std::mem::replace(view, Box::new(placeholder()));
            // `removed` ascends: looked up, not scanned.
            view.vanished.retain(|u| removed.binary_search(u).is_err());
            self.remove_from_view(&mut view, &removed);
            self.state = State::Selected(view);
        }
        self.sync(env, true, false).await
    }

    /// CLOSE expunges silently (unless read-only); UNSELECT just leaves.
    pub(super) async fn close(&mut self, env: &dyn Environment, expunge: bool) -> Done {
        let view = self.view()?;
        let (mailbox, read_only) = (view.id, view.read_only);
        if expunge && !read_only {
            let deleted = view.messages.first_where(|flags| flags & Flags::DELETED != 0).is_some();
            if deleted {
                env.store().expunge_deleted(mailbox, None).await.map_err(unavailable)?;
            }
        }
        self.state = State::Authenticated;
        Ok(())
    }
}

fn placeholder() -> super::view::View {
    super::view::View::placeholder()
}
