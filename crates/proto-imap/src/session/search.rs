//! SEARCH and UID SEARCH with every RFC 9051 key, MODSEQ (RFC 7162), ESEARCH return options
//! (RFC 4731, 9051) and SAVE (RFC 5182). Only what the criteria need is read: flags and UIDs
//! come from the view, dates and sizes from the stored summaries, headers and bodies from the
//! messages only when a text key asks for them.
//!
//! Header keys on the fields searched most (Message-ID, Subject, From, To, Cc, Bcc,
//! In-Reply-To, References) read the header caches computed when the messages were stored
//! (`portcullis_mime::header_cache`), which hold exactly the values a parse of the header
//! gives (FROM, TO, CC and BCC match the addresses, `portcullis_mime::address_values`; HEADER
//! matches the field's text); other fields, and messages without a cache, are read from the header, with a quick
//! look at its bytes ruling most messages out before any parsing
//! (`portcullis_mime::header_may_contain`). Needles are lower-cased once per command.

use portcullis_mime::{contains_lowered, HeaderCache};
use portcullis_store::{Flags, MessageIndex, MessageRecord};

use super::recent::Recent;
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

/// The criteria with every text needle lower-cased (`str::to_lowercase`), as matching wants.
fn lowered(key: &SearchKey) -> SearchKey {
    match key {
        SearchKey::And(keys) => SearchKey::And(keys.iter().map(lowered).collect()),
        SearchKey::Or(a, b) => SearchKey::Or(Box::new(lowered(a)), Box::new(lowered(b))),
        SearchKey::Not(k) => SearchKey::Not(Box::new(lowered(k))),
        SearchKey::Header(field, v) => SearchKey::Header(field.clone(), v.to_lowercase()),
        SearchKey::Bcc(v) => SearchKey::Bcc(v.to_lowercase()),
        SearchKey::Cc(v) => SearchKey::Cc(v.to_lowercase()),
        SearchKey::From(v) => SearchKey::From(v.to_lowercase()),
        SearchKey::To(v) => SearchKey::To(v.to_lowercase()),
        SearchKey::Subject(v) => SearchKey::Subject(v.to_lowercase()),
        SearchKey::Body(v) => SearchKey::Body(v.to_lowercase()),
        SearchKey::Text(v) => SearchKey::Text(v.to_lowercase()),
        other => other.clone(),
    }
}

/// The header fields the criteria look at: as text (HEADER, SUBJECT), and as addresses
/// (FROM, TO, CC, BCC).
#[derive(Default)]
struct Fields<'k> {
    text: Vec<&'k str>,
    addresses: Vec<&'static str>,
}

fn header_fields<'k>(key: &'k SearchKey, out: &mut Fields<'k>) {
    match key {
        SearchKey::And(keys) => keys.iter().for_each(|k| header_fields(k, out)),
        SearchKey::Or(a, b) => {
            header_fields(a, out);
            header_fields(b, out);
        }
        SearchKey::Not(k) => header_fields(k, out),
        SearchKey::Header(field, _) => out.text.push(field),
        SearchKey::Bcc(_) => out.addresses.push("Bcc"),
        SearchKey::Cc(_) => out.addresses.push("Cc"),
        SearchKey::From(_) => out.addresses.push("From"),
        SearchKey::To(_) => out.addresses.push("To"),
        SearchKey::Subject(_) => out.text.push("Subject"),
        _ => {}
    }
}

/// A stored header cache, if it answers for every one of `fields`.
fn covering_cache<'a>(stored: Option<&'a [u8]>, fields: &Fields<'_>) -> Option<HeaderCache<'a>> {
    stored.and_then(HeaderCache::new).filter(|c| {
        fields.text.iter().all(|f| c.values(f).is_some()) && fields.addresses.iter().all(|f| c.addresses(f).is_some())
    })
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
    /// The header cache, when it answers for the fields the criteria name.
    cache: Option<HeaderCache<'a>>,
    saved: &'a [u32],
    /// The session's \Recent messages.
    recent: &'a Recent,
}

impl Candidate<'_> {
    /// `needle` is lower-cased (see [`lowered`]).
    fn header_contains(&self, field: &str, needle: &str) -> bool {
        if let Some(values) = self.cache.and_then(|c| c.values(field)) {
            // HEADER field "" matches every message that has the field (RFC 9051 §6.4.4).
            if needle.is_empty() {
                return !values.is_empty();
            }
            return values.iter().any(|v| contains_lowered(v, needle));
        }
        let Some(content) = self.content else { return false };
        if !portcullis_mime::header_may_contain(content, field, needle) {
            return false;
        }
        let values = portcullis_mime::header_values(content, field);
        if needle.is_empty() {
            return !values.is_empty();
        }
        values.iter().any(|v| contains_lowered(v, needle))
    }

    /// FROM, TO, CC, BCC: `needle` (lower-cased) in the field's addresses, as
    /// `portcullis_mime::address_values` writes them.
    fn address_contains(&self, field: &str, needle: &str) -> bool {
        if let Some(values) = self.cache.and_then(|c| c.addresses(field)) {
            if needle.is_empty() {
                return !values.is_empty();
            }
            return values.iter().any(|v| contains_lowered(v, needle));
        }
        let Some(content) = self.content else { return false };
        // Only whether the field is there: the text matched is rebuilt from the addresses
        // ("a (x)@ b" is found as "a@b"), so the raw bytes cannot rule a needle out.
        if !portcullis_mime::header_may_contain(content, field, "") {
            return false;
        }
        let values = portcullis_mime::address_values(content, field);
        if needle.is_empty() {
            return !values.is_empty();
        }
        values.iter().any(|v| contains_lowered(v, needle))
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
                Flag::Recent => self.recent.contains(self.message.uid),
                Flag::Keyword(k) => self.message.flags.keywords.iter().any(|have| have.eq_ignore_ascii_case(k)),
                Flag::Extension(_) => false,
            },
            // RFC 3501 §6.4.4: NEW is RECENT UNSEEN, OLD is NOT RECENT.
            SearchKey::New => self.recent.contains(self.message.uid) && flags & Flags::SEEN == 0,
            SearchKey::Old => !self.recent.contains(self.message.uid),
            SearchKey::Header(field, value) => self.header_contains(field, value),
            SearchKey::Bcc(v) => self.address_contains("Bcc", v),
            SearchKey::Cc(v) => self.address_contains("Cc", v),
            SearchKey::From(v) => self.address_contains("From", v),
            SearchKey::To(v) => self.address_contains("To", v),
            SearchKey::Subject(v) => self.header_contains("Subject", v),
            SearchKey::Body(v) => self.content.is_some_and(|c| contains_lowered(&portcullis_mime::body_text(c), v)),
            SearchKey::Text(v) => self.content.is_some_and(|c| {
                let header_len = self.record.map(|r| r.header_len as usize).unwrap_or(0).min(c.len());
                contains_lowered(&String::from_utf8_lossy(&c[..header_len]), v)
                    || contains_lowered(&portcullis_mime::body_text(c), v)
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
        let criteria = lowered(&command.criteria);
        let mut fields = Fields::default();
        header_fields(&criteria, &mut fields);
        // Header keys only on cached fields: the header caches answer, headers are read only
        // for messages they do not cover.
        let use_caches = need.header
            && !need.body
            && fields.text.iter().all(|f| portcullis_mime::CACHED_FIELDS.iter().any(|c| c.eq_ignore_ascii_case(f)));
        let store = env.store();
        let unavailable = |_| no("[UNAVAILABLE] Try again later");
        let view = self.view()?;
        let mailbox = view.id;
        let largest_seq = view.messages.len() as u32;
        let largest_uid = view.largest_uid();
        let mut found: Vec<(u32, u32, u64)> = Vec::new(); // (seq, uid, modseq)

        for (chunk_index, start) in (0..view.messages.len()).step_by(CHUNK).enumerate() {
            let chunk: Vec<MessageIndex> =
                (start..(start + CHUNK).min(view.messages.len())).map(|i| view.messages.get(i)).collect();
            let uids: Vec<u32> = chunk.iter().map(|m| m.uid).collect();
            let records = if need.record {
                store.message_records(mailbox, &uids).await.map_err(unavailable)?
            } else {
                Vec::new()
            };
            let mut caches = Vec::new();
            let contents = if need.body {
                store.message_raws(mailbox, &uids).await.map_err(unavailable)?
            } else if use_caches {
                caches = store.message_header_caches(mailbox, &uids).await.map_err(unavailable)?;
                // A cache that cannot answer for every field named is dropped here, once: that
                // message's header is read instead.
                let mut uncovered = Vec::new();
                for (uid, cache) in &mut caches {
                    if covering_cache(cache.as_deref(), &fields).is_none() {
                        *cache = None;
                        uncovered.push(*uid);
                    }
                }
                if uncovered.is_empty() {
                    Vec::new()
                } else {
                    store.message_headers(mailbox, &uncovered).await.map_err(unavailable)?
                }
            } else if need.header {
                store.message_headers(mailbox, &uids).await.map_err(unavailable)?
            } else {
                Vec::new()
            };
            // Records, contents and caches come in UID order, missing ones left out (removed
            // meanwhile): each is matched to its message by walking along.
            let mut records = records.into_iter().peekable();
            let mut contents = contents.into_iter().peekable();
            let mut caches = caches.into_iter().peekable();
            for (offset, message) in chunk.iter().enumerate() {
                let seq = (chunk_index * CHUNK + offset + 1) as u32;
                let record = records.next_if(|r| r.uid == message.uid);
                if need.record && record.is_none() {
                    continue;
                }
                let mut cache = None;
                if use_caches {
                    match caches.next_if(|(u, _)| *u == message.uid) {
                        Some((_, stored)) => cache = stored,
                        None => continue,
                    }
                }
                // Kept above only if it covers every field named.
                let header_cache = cache.as_deref().and_then(HeaderCache::new);
                let covered = header_cache.is_some();
                let content = match contents.next_if(|(u, _)| *u == message.uid) {
                    Some((_, content)) => Some(content),
                    None if covered => None,
                    None if need.body || need.header => continue,
                    None => None,
                };
                let candidate = Candidate {
                    seq,
                    largest_seq,
                    largest_uid,
                    message,
                    record: record.as_ref(),
                    content: content.as_deref(),
                    cache: header_cache,
                    saved: &self.saved,
                    recent: &view.recent,
                };
                if candidate.matches(&criteria) {
                    found.push((seq, message.uid, message.modseq));
                }
            }
        }

        let numbers: Vec<u32> = found.iter().map(|&(seq, uid, _)| if command.uid { uid } else { seq }).collect();
        let highest_modseq = has_modseq(&command.criteria).then(|| found.iter().map(|f| f.2).max()).flatten();
        if has_modseq(&command.criteria) {
            self.enable_condstore();
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
                // The highest modseq of the messages the answer names: with only MIN and/or
                // MAX, those one or two (RFC 4731 §3.2, RFC 7162 §3.1.5).
                let only_ends = !all && !returns.contains(&SearchReturn::Count);
                let named_modseq = if only_ends {
                    let ends = [found.first(), found.last()];
                    let min = returns.contains(&SearchReturn::Min).then_some(ends[0]).flatten();
                    let max = returns.contains(&SearchReturn::Max).then_some(ends[1]).flatten();
                    highest_modseq.and(min.into_iter().chain(max).map(|f| f.2).max())
                } else {
                    highest_modseq
                };
                if let Some(m) = named_modseq {
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
