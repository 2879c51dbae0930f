//! SEARCH and UID SEARCH with every RFC 9051 key, MODSEQ (RFC 7162), ESEARCH return options
//! (RFC 4731, 9051) and SAVE (RFC 5182). Only what the criteria need is read: flags and UIDs
//! come from the view, dates and sizes from the stored summaries, headers and bodies from the
//! messages only when a text key asks for them.

use portcullis_store::{Flags, MessageIndex, MessageRecord};

use super::{no, Answer, Environment, Progress, Session};
use crate::command::{Flag, SearchCommand, SearchKey, SearchReturn};
use crate::encode;
use crate::time::day_of;

/// Records read per store call while searching.
const CHUNK: usize = 1000;

#[derive(Default, Clone, Copy)]
struct Needs {
    record: bool,
    header: bool,
    body: bool,
}

fn needs(key: &SearchKey, n: &mut Needs) {
    match key {
        SearchKey::And(keys) => keys.iter().for_each(|k| needs(k, n)),
        SearchKey::Or(a, b) => {
            needs(a, n);
            needs(b, n);
        }
        SearchKey::Not(k) => needs(k, n),
        SearchKey::Before(_)
        | SearchKey::On(_)
        | SearchKey::Since(_)
        | SearchKey::SentBefore(_)
        | SearchKey::SentOn(_)
        | SearchKey::SentSince(_)
        | SearchKey::Larger(_)
        | SearchKey::Smaller(_) => n.record = true,
        SearchKey::Header(..)
        | SearchKey::Bcc(_)
        | SearchKey::Cc(_)
        | SearchKey::From(_)
        | SearchKey::To(_)
        | SearchKey::Subject(_) => n.header = true,
        SearchKey::Body(_) | SearchKey::Text(_) => n.body = true,
        _ => {}
    }
}

fn has_modseq(key: &SearchKey) -> bool {
    match key {
        SearchKey::ModSeq(_) => true,
        SearchKey::And(keys) => keys.iter().any(has_modseq),
        SearchKey::Or(a, b) => has_modseq(a) || has_modseq(b),
        SearchKey::Not(k) => has_modseq(k),
        _ => false,
    }
}

/// What one message offers to the criteria.
struct Candidate<'a> {
    seq: u32,
    largest_seq: u32,
    largest_uid: u32,
    message: &'a MessageIndex,
    record: Option<&'a MessageRecord>,
    /// Header section, or the whole message when body text is needed.
    content: Option<&'a [u8]>,
    saved: &'a [u32],
}

fn contains(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(&needle.to_lowercase())
}

impl Candidate<'_> {
    fn header_contains(&self, field: &str, needle: &str) -> bool {
        let Some(content) = self.content else { return false };
        let values = portcullis_mime::header_values(content, field);
        // HEADER field "" matches every message that has the field (RFC 9051 §6.4.4).
        if needle.is_empty() {
            return !values.is_empty();
        }
        values.iter().any(|v| contains(v, needle))
    }

    fn matches(&self, key: &SearchKey) -> bool {
        let flags = self.message.flags.system;
        match key {
            SearchKey::All => true,
            SearchKey::And(keys) => keys.iter().all(|k| self.matches(k)),
            SearchKey::Or(a, b) => self.matches(a) || self.matches(b),
            SearchKey::Not(k) => !self.matches(k),
            SearchKey::SequenceSet(set) => {
                if *set == crate::command::SequenceSet::Saved {
                    self.saved.contains(&self.message.uid)
                } else {
                    set.contains(self.seq, self.largest_seq)
                }
            }
            SearchKey::Uid(set) => {
                if *set == crate::command::SequenceSet::Saved {
                    self.saved.contains(&self.message.uid)
                } else {
                    set.contains(self.message.uid, self.largest_uid)
                }
            }
            SearchKey::Flag(flag) => match flag {
                Flag::Seen => flags & Flags::SEEN != 0,
                Flag::Answered => flags & Flags::ANSWERED != 0,
                Flag::Flagged => flags & Flags::FLAGGED != 0,
                Flag::Deleted => flags & Flags::DELETED != 0,
                Flag::Draft => flags & Flags::DRAFT != 0,
                // Portcullis keeps no \Recent state (removed in IMAP4rev2).
                Flag::Recent => false,
                Flag::Keyword(k) => self.message.flags.keywords.iter().any(|have| have.eq_ignore_ascii_case(k)),
                Flag::Extension(_) => false,
            },
            SearchKey::New => false,
            SearchKey::Old => true,
            SearchKey::Header(field, value) => self.header_contains(field, value),
            SearchKey::Bcc(v) => self.header_contains("Bcc", v),
            SearchKey::Cc(v) => self.header_contains("Cc", v),
            SearchKey::From(v) => self.header_contains("From", v),
            SearchKey::To(v) => self.header_contains("To", v),
            SearchKey::Subject(v) => self.header_contains("Subject", v),
            SearchKey::Body(v) => self.content.is_some_and(|c| contains(&portcullis_mime::body_text(c), v)),
            SearchKey::Text(v) => self.content.is_some_and(|c| {
                let header_len = self.record.map(|r| r.header_len as usize).unwrap_or(0).min(c.len());
                contains(&String::from_utf8_lossy(&c[..header_len]), v) || contains(&portcullis_mime::body_text(c), v)
            }),
            SearchKey::Before(day) => self.record.is_some_and(|r| day_of(r.internal_date) < *day),
            SearchKey::On(day) => self.record.is_some_and(|r| day_of(r.internal_date) == *day),
            SearchKey::Since(day) => self.record.is_some_and(|r| day_of(r.internal_date) >= *day),
            SearchKey::SentBefore(day) => self.record.and_then(|r| r.sent_date).is_some_and(|d| day_of(d) < *day),
            SearchKey::SentOn(day) => self.record.and_then(|r| r.sent_date).is_some_and(|d| day_of(d) == *day),
            SearchKey::SentSince(day) => self.record.and_then(|r| r.sent_date).is_some_and(|d| day_of(d) >= *day),
            SearchKey::Larger(n) => self.record.is_some_and(|r| r.size > *n),
            SearchKey::Smaller(n) => self.record.is_some_and(|r| r.size < *n),
            SearchKey::ModSeq(m) => self.message.modseq >= *m,
        }
    }
}

impl Session {
    pub(super) async fn search(
        &mut self,
        env: &dyn Environment,
        tag: &str,
        command: SearchCommand,
    ) -> Result<Progress, Answer> {
        if let Some(charset) = &command.charset {
            if charset != "UTF-8" && charset != "US-ASCII" {
                return Err(no("[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset"));
            }
        }
        let save = command.returns.as_ref().is_some_and(|r| r.contains(&SearchReturn::Save));
        self.sync(env, command.uid, false).await?;
        let mut need = Needs::default();
        needs(&command.criteria, &mut need);
        if need.body {
            need.record = true;
        }
        let store = env.store();
        let unavailable = |_| no("[UNAVAILABLE] Try again later");
        let view = self.view()?;
        let mailbox = view.id;
        let largest_seq = view.messages.len() as u32;
        let largest_uid = view.messages.last().map(|m| m.uid).unwrap_or(0);
        let mut found: Vec<(u32, u32, u64)> = Vec::new(); // (seq, uid, modseq)

        for (chunk_index, chunk) in view.messages.chunks(CHUNK).enumerate() {
            let uids: Vec<u32> = chunk.iter().map(|m| m.uid).collect();
            let records = if need.record {
                store.message_records(mailbox, &uids).await.map_err(unavailable)?
            } else {
                Vec::new()
            };
            let contents = if need.body {
                store.message_raws(mailbox, &uids).await.map_err(unavailable)?
            } else if need.header {
                store.message_headers(mailbox, &uids).await.map_err(unavailable)?
            } else {
                Vec::new()
            };
            let mut contents = contents.into_iter().peekable();
            for (offset, message) in chunk.iter().enumerate() {
                let seq = (chunk_index * CHUNK + offset + 1) as u32;
                let record = records.iter().find(|r| r.uid == message.uid);
                if need.record && record.is_none() {
                    continue;
                }
                let content = match contents.next_if(|(u, _)| *u == message.uid) {
                    Some((_, content)) => Some(content),
                    None if need.body || need.header => continue,
                    None => None,
                };
                let candidate = Candidate {
                    seq,
                    largest_seq,
                    largest_uid,
                    message,
                    record,
                    content: content.as_deref(),
                    saved: &self.saved,
                };
                if candidate.matches(&command.criteria) {
                    found.push((seq, message.uid, message.modseq));
                }
            }
        }

        let numbers: Vec<u32> = found.iter().map(|&(seq, uid, _)| if command.uid { uid } else { seq }).collect();
        let highest_modseq = has_modseq(&command.criteria).then(|| found.iter().map(|f| f.2).max()).flatten();
        if has_modseq(&command.criteria) {
            self.condstore = true;
        }
        match &command.returns {
            None if !self.rev2 => {
                let mut line = String::from("SEARCH");
                for n in &numbers {
                    line.push_str(&format!(" {n}"));
                }
                if let Some(m) = highest_modseq {
                    line.push_str(&format!(" (MODSEQ {m})"));
                }
                self.untagged(&line);
            }
            returns => {
                let returns: &[SearchReturn] = returns.as_deref().unwrap_or(&[]);
                // RETURN () and a rev2 SEARCH without RETURN mean ALL.
                let all = returns.is_empty() || returns.contains(&SearchReturn::All);
                let mut line = format!("ESEARCH (TAG \"{tag}\")");
                if command.uid {
                    line.push_str(" UID");
                }
                if !numbers.is_empty() {
                    if returns.contains(&SearchReturn::Min) {
                        line.push_str(&format!(" MIN {}", numbers[0]));
                    }
                    if returns.contains(&SearchReturn::Max) {
                        line.push_str(&format!(" MAX {}", numbers[numbers.len() - 1]));
                    }
                    if all {
                        line.push_str(&format!(" ALL {}", encode::compact_set(&numbers)));
                    }
                }
                if returns.contains(&SearchReturn::Count) {
                    line.push_str(&format!(" COUNT {}", numbers.len()));
                }
                if let Some(m) = highest_modseq {
                    line.push_str(&format!(" MODSEQ {m}"));
                }
                // SAVE alone sends no ESEARCH (RFC 5182 §2.1).
                if !(returns.len() == 1 && save) {
                    self.untagged(&line);
                }
            }
        }
        if save {
            self.saved = found.iter().map(|f| f.1).collect();
        }
        self.sync(env, command.uid, false).await?;
        self.tagged(tag, "OK SEARCH completed");
        Ok(self.after_command())
    }
}
