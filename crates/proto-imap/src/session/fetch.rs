//! FETCH and UID FETCH: answered in batches, so that `FETCH 1:* BODY[]` on a large mailbox
//! streams instead of building one huge response.

use portcullis_store::{Flags, MessageRecord};

use super::{no, Answer, Environment, Progress, Session, State};
use crate::command::{FetchCommand, FetchItem, Section, SectionText};
use crate::encode;

/// Messages answered per batch before the output is flushed.
const BATCH: usize = 250;

pub struct PendingFetch {
    tag: String,
    uid_command: bool,
    items: Vec<FetchItem>,
    /// Indexes into the view still to answer, ascending.
    indexes: Vec<usize>,
    next: usize,
    needs: Needs,
    /// Set \Seen on what is fetched (a non-PEEK body fetch on a read-write mailbox).
    mark_seen: bool,
    unknown_cte: bool,
}

#[derive(Clone, Copy, Default)]
struct Needs {
    /// Size, dates, ENVELOPE, BODYSTRUCTURE.
    record: bool,
    /// The whole message.
    raw: bool,
    /// Only the top-level header section.
    header: bool,
}

fn needs_of(items: &[FetchItem]) -> Needs {
    let mut needs = Needs::default();
    for item in items {
        match item {
            FetchItem::InternalDate
            | FetchItem::Rfc822Size
            | FetchItem::Envelope
            | FetchItem::Body
            | FetchItem::BodyStructure => needs.record = true,
            FetchItem::BodySection { section, .. } => match (&section.part[..], &section.text) {
                ([], Some(SectionText::Header | SectionText::HeaderFields(_) | SectionText::HeaderFieldsNot(_))) => {
                    needs.header = true
                }
                _ => needs.raw = true,
            },
            FetchItem::Binary { .. } | FetchItem::BinarySize { .. } => needs.raw = true,
            FetchItem::Flags | FetchItem::Uid | FetchItem::ModSeq => {}
        }
    }
    if needs.raw {
        needs.header = false;
    }
    needs
}

impl Session {
    pub(super) async fn fetch(
        &mut self,
        env: &dyn Environment,
        tag: String,
        command: FetchCommand,
    ) -> Result<Progress, Answer> {
        // Others' changes first, so the numbers below are the client's; no renumbering for
        // FETCH, but UID FETCH may be told of removals.
        self.sync(env, command.uid, false).await?;
        let saved = std::mem::take(&mut self.saved);
        let view = self.view()?;
        let chosen = if command.uid {
            Ok(view.by_uid_set(&command.set, &saved))
        } else {
            view.by_sequence(&command.set, &saved)
        };
        self.saved = saved;
        let mut indexes = chosen?;
        let mut items = command.items;
        if command.uid && !items.contains(&FetchItem::Uid) {
            items.insert(0, FetchItem::Uid);
        }
        if command.changed_since.is_some() || items.contains(&FetchItem::ModSeq) {
            self.enable_condstore();
        }
        if let Some(since) = command.changed_since {
            let view = self.view()?;
            indexes.retain(|&i| view.messages.modseq(i) > since);
            if !items.contains(&FetchItem::ModSeq) {
                items.push(FetchItem::ModSeq);
            }
            if command.vanished && self.qresync {
                let view = self.view()?;
                let changes =
                    env.store().changes_since(view.id, since).await.map_err(|_| no("[UNAVAILABLE] Try again later"))?;
                let largest = view.largest_uid().max(view.uidnext.saturating_sub(1));
                let mut gone: Vec<u32> =
                    changes.expunged.into_iter().filter(|&u| command.set.contains(u, largest)).collect();
                gone.sort_unstable();
                gone.dedup();
                if !gone.is_empty() {
                    self.untagged(&format!("VANISHED (EARLIER) {}", encode::compact_set(&gone)));
                }
            }
        }
        let read_only = self.view()?.read_only;
        let mark_seen = !read_only
            && items.iter().any(|i| match i {
                FetchItem::BodySection { peek, legacy, .. } => !peek && *legacy != Some("RFC822.HEADER"),
                FetchItem::Binary { peek, .. } => !peek,
                _ => false,
            });
        let pending = PendingFetch {
            tag,
            uid_command: command.uid,
            needs: needs_of(&items),
            items,
            indexes,
            next: 0,
            mark_seen,
            unknown_cte: false,
        };
        Ok(self.fetch_more(env, pending).await)
    }

    pub(super) async fn fetch_more(&mut self, env: &dyn Environment, mut p: PendingFetch) -> Progress {
        let batch: Vec<usize> = p.indexes[p.next..(p.next + BATCH).min(p.indexes.len())].to_vec();
        p.next += batch.len();
        if let Err(answer) = self.fetch_batch(env, &mut p, &batch).await {
            let text = match answer {
                Answer::No(t) => format!("NO {t}"),
                Answer::Bad(t) => format!("BAD {t}"),
            };
            self.tagged(&p.tag, &text);
            return Progress::Ready;
        }
        if p.next < p.indexes.len() {
            self.pending = Some(super::Pending::Fetch(p));
            return Progress::More;
        }
        let _ = self.sync(env, p.uid_command, false).await;
        if p.unknown_cte {
            self.tagged(&p.tag, "NO [UNKNOWN-CTE] A part has a content transfer encoding that cannot be decoded");
        } else {
            self.tagged(&p.tag, "OK FETCH completed");
        }
        Progress::Ready
    }

    async fn fetch_batch(
        &mut self,
        env: &dyn Environment,
        p: &mut PendingFetch,
        batch: &[usize],
    ) -> Result<(), Answer> {
        let store = env.store();
        let unavailable = |_| no("[UNAVAILABLE] Try again later");
        let (mailbox, uids) = {
            let view = self.view()?;
            (view.id, batch.iter().map(|&i| view.messages.uid(i)).collect::<Vec<u32>>())
        };
        // \Seen for what is read (RFC 9051 §6.4.5), before answering so FLAGS include it.
        let mut newly_seen = Vec::new();
        if p.mark_seen {
            let view = self.view()?;
            let unseen: Vec<u32> = batch
                .iter()
                .filter(|&&i| view.messages.system_flags(i) & Flags::SEEN == 0)
                .map(|&i| view.messages.uid(i))
                .collect();
            if !unseen.is_empty() {
                let seen = Flags::system(Flags::SEEN);
                let update = store
                    .store_flags(mailbox, &unseen, portcullis_store::FlagOp::Add, &seen, None)
                    .await
                    .map_err(unavailable)?;
                let view = self.view_mut()?;
                for changed in update.updated {
                    if let Some(i) = view.position(changed.uid) {
                        newly_seen.push(changed.uid);
                        view.messages.set(i, &changed);
                    }
                }
            }
        }
        let records: Vec<MessageRecord> =
            if p.needs.record { store.message_records(mailbox, &uids).await.map_err(unavailable)? } else { Vec::new() };
        let contents = if p.needs.raw {
            store.message_raws(mailbox, &uids).await.map_err(unavailable)?
        } else if p.needs.header {
            store.message_headers(mailbox, &uids).await.map_err(unavailable)?
        } else {
            Vec::new()
        };
        let mut contents = contents.into_iter().peekable();

        for (&index, &uid) in batch.iter().zip(&uids) {
            let record = records.iter().find(|r| r.uid == uid);
            if p.needs.record && record.is_none() {
                continue; // Removed meanwhile; the client hears of it at the next sync.
            }
            // Contents come in the order asked, missing ones left out.
            let content = match contents.next_if(|(u, _)| *u == uid) {
                Some((_, content)) => Some(content),
                None if p.needs.raw || p.needs.header => continue,
                None => None,
            };
            let State::Selected(view) = &self.state else { return Err(no("No mailbox selected")) };
            let message = view.messages.get(index);
            let recent = view.recent.contains(uid);
            let mut line = format!("* {} FETCH (", index + 1).into_bytes();
            let mut first = true;
            let mut flags_written = false;
            for item in &p.items {
                if !first {
                    line.push(b' ');
                }
                first = false;
                match item {
                    FetchItem::Uid => line.extend_from_slice(format!("UID {uid}").as_bytes()),
                    FetchItem::Flags => {
                        line.extend_from_slice(b"FLAGS ");
                        encode::flags(&mut line, &message.flags, recent);
                        flags_written = true;
                    }
                    FetchItem::ModSeq => line.extend_from_slice(format!("MODSEQ ({})", message.modseq).as_bytes()),
                    FetchItem::InternalDate => {
                        let date = record.map(|r| r.internal_date).unwrap_or(0);
                        line.extend_from_slice(
                            format!("INTERNALDATE \"{}\"", crate::time::internal_date(date)).as_bytes(),
                        );
                    }
                    FetchItem::Rfc822Size => line
                        .extend_from_slice(format!("RFC822.SIZE {}", record.map(|r| r.size).unwrap_or(0)).as_bytes()),
                    FetchItem::Envelope => {
                        line.extend_from_slice(b"ENVELOPE ");
                        line.extend_from_slice(record.map(|r| &r.envelope[..]).unwrap_or(b"NIL"));
                    }
                    FetchItem::Body => {
                        line.extend_from_slice(b"BODY ");
                        line.extend_from_slice(record.map(|r| &r.body[..]).unwrap_or(b"NIL"));
                    }
                    FetchItem::BodyStructure => {
                        line.extend_from_slice(b"BODYSTRUCTURE ");
                        line.extend_from_slice(record.map(|r| &r.bodystructure[..]).unwrap_or(b"NIL"));
                    }
                    FetchItem::BodySection { section, partial, legacy, .. } => {
                        let data = content.as_deref().and_then(|c| portcullis_mime::section(c, section));
                        match legacy {
                            Some(name) => line.extend_from_slice(name.as_bytes()),
                            None => {
                                line.extend_from_slice(b"BODY[");
                                line.extend_from_slice(section_name(section).as_bytes());
                                line.push(b']');
                            }
                        }
                        write_partial(&mut line, data.as_deref(), *partial, false);
                    }
                    FetchItem::Binary { part, partial, .. } => {
                        let decoded = match content.as_deref().map(|c| portcullis_mime::binary(c, part)) {
                            Some(Ok(decoded)) => decoded,
                            Some(Err(_)) => {
                                p.unknown_cte = true;
                                None
                            }
                            None => None,
                        };
                        line.extend_from_slice(format!("BINARY[{}]", part_name(part)).as_bytes());
                        write_partial(&mut line, decoded.as_deref(), *partial, true);
                    }
                    FetchItem::BinarySize { part } => {
                        let size = match content.as_deref().map(|c| portcullis_mime::binary(c, part)) {
                            Some(Ok(Some(decoded))) => decoded.len().to_string(),
                            Some(Err(_)) => {
                                p.unknown_cte = true;
                                "NIL".to_string()
                            }
                            _ => "NIL".to_string(),
                        };
                        line.extend_from_slice(format!("BINARY.SIZE[{}] {size}", part_name(part)).as_bytes());
                    }
                }
            }
            if newly_seen.contains(&uid) && !flags_written {
                line.extend_from_slice(b" FLAGS ");
                encode::flags(&mut line, &message.flags, recent);
            }
            line.extend_from_slice(b")\r\n");
            self.out.extend_from_slice(&line);
        }
        Ok(())
    }
}

fn part_name(part: &[u32]) -> String {
    part.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(".")
}

/// The section as echoed in the response: "1.2.HEADER.FIELDS (FROM SUBJECT)".
fn section_name(section: &Section) -> String {
    let mut name = part_name(&section.part);
    if let Some(text) = &section.text {
        if !name.is_empty() {
            name.push('.');
        }
        match text {
            SectionText::Header => name.push_str("HEADER"),
            SectionText::Text => name.push_str("TEXT"),
            SectionText::Mime => name.push_str("MIME"),
            SectionText::HeaderFields(fields) | SectionText::HeaderFieldsNot(fields) => {
                name.push_str(if matches!(text, SectionText::HeaderFields(_)) {
                    "HEADER.FIELDS ("
                } else {
                    "HEADER.FIELDS.NOT ("
                });
                name.push_str(&fields.iter().map(|f| f.to_ascii_uppercase()).collect::<Vec<_>>().join(" "));
                name.push(')');
            }
        }
    }
    name
}

/// `<start>` and the (partial) data as a literal; NIL when the section does not exist. Binary
/// data holding NUL goes as a literal8 (RFC 3516).
fn write_partial(out: &mut Vec<u8>, data: Option<&[u8]>, partial: Option<(u64, u64)>, binary: bool) {
    let Some(data) = data else {
        out.extend_from_slice(b" NIL");
        return;
    };
    let data = match partial {
        Some((start, length)) => {
            out.extend_from_slice(format!("<{start}>").as_bytes());
            let start = (start as usize).min(data.len());
            let end = start.saturating_add(length as usize).min(data.len());
            &data[start..end]
        }
        None => data,
    };
    let tilde = if binary && data.contains(&0) { "~" } else { "" };
    out.extend_from_slice(format!(" {tilde}{{{}}}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
}
