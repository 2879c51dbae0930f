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
//!
//! What one SEARCH costs stays bounded whatever the mailbox holds (issue 13): the parser takes
//! at most 1000 keys, of which [`MAX_TEXT_KEYS`] may look at text; messages are read
//! [`GROUP_BYTES`] at a time (their sizes known from their records) and the text keys are
//! evaluated for such a group off the workers every session shares
//! ([`Environment::offload`]), each message's header parsed once and its body text decoded
//! once however many keys look at them; and what is evaluated in place yields to other
//! sessions every [`TESTS_PER_YIELD`] key tests. A message larger than a group is read alone,
//! and its body text is never made whole: it is decoded, lower-cased and searched for every
//! BODY and TEXT needle 64 KiB at a time (`portcullis_mime::body_contains`), so what a SEARCH
//! holds is at most a group, or one message, and a window.

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;

use portcullis_mime::{contains_lowered, HeaderCache, ParsedHeader};
use portcullis_store::{Flags, MessageIndex, MessageRecord};

use super::{no, offloaded, yield_now, Answer, Environment, Progress, Session};
use crate::command::{Flag, SearchCommand, SearchKey, SearchReturn, SequenceSet};
use crate::encode;
use crate::time::day_of;

/// Messages whose records are read per store call, and between which the session yields.
const CHUNK: usize = 1000;
/// Bytes of messages (or headers) read and evaluated together.
const GROUP_BYTES: u64 = 1 << 20;
/// Key tests (keys times messages) the session makes between two yields to other sessions
/// when it evaluates without reading anything: a thousand keys over a chunk of messages would
/// otherwise hold the worker for all of them.
const TESTS_PER_YIELD: usize = 20_000;
/// Keys that look at text (HEADER, FROM, TO, CC, BCC, SUBJECT, BODY, TEXT) in one SEARCH: each
/// scans text of every message it reaches. Clients send one or a few.
const MAX_TEXT_KEYS: usize = 64;

#[derive(Default, Clone, Copy)]
struct Needs {
    record: bool,
    header: bool,
    body: bool,
    /// Keys that look at text.
    text_keys: usize,
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
        | SearchKey::Subject(_) => {
            n.header = true;
            n.text_keys += 1;
        }
        SearchKey::Body(_) | SearchKey::Text(_) => {
            n.body = true;
            n.text_keys += 1;
        }
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

/// The keys in the criteria, nested ones included: what one message's test costs.
fn weight(key: &SearchKey) -> usize {
    1 + match key {
        SearchKey::And(keys) => keys.iter().map(weight).sum(),
        SearchKey::Or(a, b) => weight(a) + weight(b),
        SearchKey::Not(k) => weight(k),
        _ => 0,
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

/// What one message offers to the criteria, owned, so that a group of them can be evaluated
/// on another thread.
struct Entry {
    seq: u32,
    message: MessageIndex,
    /// \Recent in this session.
    recent: bool,
    /// In the result saved by SEARCH RETURN (SAVE).
    saved: bool,
    record: Option<MessageRecord>,
    /// The header section, or the whole message when body text is needed.
    content: Option<Vec<u8>>,
    /// The stored header cache, kept only when it answers for every field the criteria name.
    cache: Option<Vec<u8>>,
}

/// The numbers `*` stands for.
#[derive(Clone, Copy)]
struct Ends {
    largest_seq: u32,
    largest_uid: u32,
}

/// The needles of the BODY and TEXT keys (lower-cased), each once: a message's body text is
/// searched for all of them in one pass.
fn body_needles<'k>(key: &'k SearchKey, out: &mut Vec<&'k str>) {
    match key {
        SearchKey::And(keys) => keys.iter().for_each(|k| body_needles(k, out)),
        SearchKey::Or(a, b) => {
            body_needles(a, out);
            body_needles(b, out);
        }
        SearchKey::Not(k) => body_needles(k, out),
        SearchKey::Body(needle) | SearchKey::Text(needle) if !out.contains(&needle.as_str()) => out.push(needle),
        _ => {}
    }
}

/// Which of `entries` match: (seq, uid, modseq) of each, in order.
fn evaluate(criteria: &SearchKey, ends: Ends, entries: &[Entry]) -> Vec<(u32, u32, u64)> {
    let mut needles = Vec::new();
    body_needles(criteria, &mut needles);
    entries
        .iter()
        .filter(|e| Candidate::new(e, ends, &needles).matches(criteria))
        .map(|e| (e.seq, e.message.uid, e.message.modseq))
        .collect()
}

/// One message under evaluation, with what is worked out of it once whatever the number of
/// keys that need it: its header parsed, each field's values lower-cased, its header text
/// lower-cased, and whether its body text holds each needle (one pass over the body, a window
/// at a time: `portcullis_mime::body_contains`).
struct Candidate<'a> {
    entry: &'a Entry,
    ends: Ends,
    cache: Option<HeaderCache<'a>>,
    /// The header section of `content`.
    header: Option<&'a [u8]>,
    parsed: OnceCell<ParsedHeader<'a>>,
    /// (address field?, field lower-cased) -> the values, lower-cased.
    values: RefCell<HashMap<(bool, String), Vec<String>>>,
    /// The header as text, lower-cased (TEXT).
    header_text: OnceCell<String>,
    /// The needles of the BODY and TEXT keys, and whether the body text holds each.
    body_needles: &'a [&'a str],
    body_found: OnceCell<Vec<bool>>,
}

impl<'a> Candidate<'a> {
    fn new(entry: &'a Entry, ends: Ends, body_needles: &'a [&'a str]) -> Candidate<'a> {
        let header = entry.content.as_deref().map(|c| {
            let len = entry.record.as_ref().map_or(c.len(), |r| r.header_len as usize);
            &c[..len.min(c.len())]
        });
        Candidate {
            entry,
            ends,
            cache: entry.cache.as_deref().and_then(HeaderCache::new),
            header,
            parsed: OnceCell::new(),
            values: RefCell::default(),
            header_text: OnceCell::new(),
            body_needles,
            body_found: OnceCell::new(),
        }
    }

    /// A field's values (as text, or its addresses), lower-cased; from the header parsed once.
    fn field_contains(&self, address: bool, field: &str, needle: &str) -> bool {
        let Some(header) = self.header else { return false };
        let key = (address, field.to_ascii_lowercase());
        if let Some(values) = self.values.borrow().get(&key) {
            return any_contains(values, needle);
        }
        // A quick look at the bytes first rules most messages out. For addresses only whether
        // the field is there: the text matched is rebuilt from the addresses ("a (x)@ b" is
        // found as "a@b"), so the raw bytes cannot rule a needle out.
        if !portcullis_mime::header_may_contain(header, field, if address { "" } else { needle }) {
            return false;
        }
        let parsed = self.parsed.get_or_init(|| ParsedHeader::new(header));
        let values = if address { parsed.addresses(field) } else { parsed.values(field) };
        let values: Vec<String> = values.iter().map(|v| v.to_lowercase()).collect();
        let found = any_contains(&values, needle);
        self.values.borrow_mut().insert(key, values);
        found
    }

    /// `needle` is lower-cased (see [`lowered`]).
    fn header_contains(&self, field: &str, needle: &str) -> bool {
        if let Some(values) = self.cache.and_then(|c| c.values(field)) {
            // HEADER field "" matches every message that has the field (RFC 9051 §6.4.4).
            return if needle.is_empty() {
                !values.is_empty()
            } else {
                values.iter().any(|v| contains_lowered(v, needle))
            };
        }
        self.field_contains(false, field, needle)
    }

    /// FROM, TO, CC, BCC: `needle` (lower-cased) in the field's addresses, as
    /// `portcullis_mime::address_values` writes them.
    fn address_contains(&self, field: &str, needle: &str) -> bool {
        if let Some(values) = self.cache.and_then(|c| c.addresses(field)) {
            return if needle.is_empty() {
                !values.is_empty()
            } else {
                values.iter().any(|v| contains_lowered(v, needle))
            };
        }
        self.field_contains(true, field, needle)
    }

    fn body_contains(&self, needle: &str) -> bool {
        let Some(content) = self.entry.content.as_deref() else { return false };
        let found = self.body_found.get_or_init(|| portcullis_mime::body_contains(content, self.body_needles));
        match self.body_needles.iter().position(|n| *n == needle) {
            Some(i) => found[i],
            // Every BODY and TEXT needle is in the list; this is only a fallback.
            None => portcullis_mime::body_contains(content, &[needle])[0],
        }
    }

    fn text_contains(&self, needle: &str) -> bool {
        let Some(header) = self.header else { return false };
        let header = self.header_text.get_or_init(|| String::from_utf8_lossy(header).to_lowercase());
        header.contains(needle) || self.body_contains(needle)
    }

    fn matches(&self, key: &SearchKey) -> bool {
        let message = &self.entry.message;
        let record = self.entry.record.as_ref();
        let flags = message.flags.system;
        match key {
            SearchKey::All => true,
            SearchKey::And(keys) => keys.iter().all(|k| self.matches(k)),
            SearchKey::Or(a, b) => self.matches(a) || self.matches(b),
            SearchKey::Not(k) => !self.matches(k),
            SearchKey::SequenceSet(SequenceSet::Saved) | SearchKey::Uid(SequenceSet::Saved) => self.entry.saved,
            SearchKey::SequenceSet(set) => set.contains(self.entry.seq, self.ends.largest_seq),
            SearchKey::Uid(set) => set.contains(message.uid, self.ends.largest_uid),
            SearchKey::Flag(flag) => match flag {
                Flag::Seen => flags & Flags::SEEN != 0,
                Flag::Answered => flags & Flags::ANSWERED != 0,
                Flag::Flagged => flags & Flags::FLAGGED != 0,
                Flag::Deleted => flags & Flags::DELETED != 0,
                Flag::Draft => flags & Flags::DRAFT != 0,
                Flag::Recent => self.entry.recent,
                Flag::Keyword(k) => message.flags.keywords.iter().any(|have| have.eq_ignore_ascii_case(k)),
                Flag::Extension(_) => false,
            },
            // RFC 3501 §6.4.4: NEW is RECENT UNSEEN, OLD is NOT RECENT.
            SearchKey::New => self.entry.recent && flags & Flags::SEEN == 0,
            SearchKey::Old => !self.entry.recent,
            SearchKey::Header(field, value) => self.header_contains(field, value),
            SearchKey::Bcc(v) => self.address_contains("Bcc", v),
            SearchKey::Cc(v) => self.address_contains("Cc", v),
            SearchKey::From(v) => self.address_contains("From", v),
            SearchKey::To(v) => self.address_contains("To", v),
            SearchKey::Subject(v) => self.header_contains("Subject", v),
            SearchKey::Body(v) => self.body_contains(v),
            SearchKey::Text(v) => self.text_contains(v),
            SearchKey::Before(day) => record.is_some_and(|r| day_of(r.internal_date) < *day),
            SearchKey::On(day) => record.is_some_and(|r| day_of(r.internal_date) == *day),
            SearchKey::Since(day) => record.is_some_and(|r| day_of(r.internal_date) >= *day),
            SearchKey::SentBefore(day) => record.and_then(|r| r.sent_date).is_some_and(|d| day_of(d) < *day),
            SearchKey::SentOn(day) => record.and_then(|r| r.sent_date).is_some_and(|d| day_of(d) == *day),
            SearchKey::SentSince(day) => record.and_then(|r| r.sent_date).is_some_and(|d| day_of(d) >= *day),
            SearchKey::Larger(n) => record.is_some_and(|r| r.size > *n),
            SearchKey::Smaller(n) => record.is_some_and(|r| r.size < *n),
            SearchKey::ModSeq(m) => message.modseq >= *m,
        }
    }
}

/// Whether any of `values` (lower-cased) holds `needle` (lower-cased); an empty needle asks
/// whether there is a value at all.
fn any_contains(values: &[String], needle: &str) -> bool {
    if needle.is_empty() {
        return !values.is_empty();
    }
    values.iter().any(|v| v.contains(needle))
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
        if need.text_keys > MAX_TEXT_KEYS {
            return Err(no(format!("[LIMIT] At most {MAX_TEXT_KEYS} keys that search text in one SEARCH")));
        }
        if need.body {
            need.record = true;
        }
        let criteria = Arc::new(lowered(&command.criteria));
        let mut fields = Fields::default();
        header_fields(&criteria, &mut fields);
        // Header keys only on cached fields: the header caches answer, headers are read only
        // for messages they do not cover.
        let use_caches = need.header
            && !need.body
            && fields.text.iter().all(|f| portcullis_mime::CACHED_FIELDS.iter().any(|c| c.eq_ignore_ascii_case(f)));
        let fields_text: Vec<String> = fields.text.iter().map(|f| f.to_string()).collect();
        let fields_addresses = fields.addresses.clone();
        let covers = move |stored: &[u8]| {
            let fields =
                Fields { text: fields_text.iter().map(String::as_str).collect(), addresses: fields_addresses.clone() };
            covering_cache(Some(stored), &fields).is_some()
        };
        let store = env.store();
        let unavailable = |_| no("[UNAVAILABLE] Try again later");
        let (mailbox, count, ends) = {
            let view = self.view()?;
            (
                view.id,
                view.messages.len(),
                Ends { largest_seq: view.messages.len() as u32, largest_uid: view.largest_uid() },
            )
        };
        let mut found: Vec<(u32, u32, u64)> = Vec::new(); // (seq, uid, modseq)
        let per_yield = (TESTS_PER_YIELD / weight(&criteria)).max(1);

        for start in (0..count).step_by(CHUNK) {
            let view = self.view()?;
            let mut entries: Vec<Entry> = (start..(start + CHUNK).min(count))
                .map(|i| {
                    let message = view.messages.get(i);
                    Entry {
                        seq: i as u32 + 1,
                        recent: view.recent.contains(message.uid),
                        // The saved result ascends: looked up, not scanned.
                        saved: self.saved.binary_search(&message.uid).is_ok(),
                        message,
                        record: None,
                        content: None,
                        cache: None,
                    }
                })
                .collect();
            let uids: Vec<u32> = entries.iter().map(|e| e.message.uid).collect();
            // Which messages need their bytes read: all for body keys, or header keys that no
            // cache can answer; with caches, those without one that covers the fields.
            let mut read_content = vec![need.body || (need.header && !use_caches); entries.len()];
            if use_caches {
                let mut caches =
                    store.message_header_caches(mailbox, &uids).await.map_err(unavailable)?.into_iter().peekable();
                for (entry, read) in entries.iter_mut().zip(&mut read_content) {
                    match caches.next_if(|(u, _)| *u == entry.message.uid) {
                        // A cache that cannot answer for every field named is dropped: that
                        // message's header is read instead.
                        Some((_, Some(cache))) if covers(&cache) => entry.cache = Some(cache),
                        Some(_) => *read = true,
                        None => entry.seq = 0, // Removed meanwhile.
                    }
                }
            }
            let any_content = read_content.iter().any(|&r| r);
            if need.record || any_content {
                let mut records =
                    store.message_records(mailbox, &uids).await.map_err(unavailable)?.into_iter().peekable();
                for entry in &mut entries {
                    entry.record = records.next_if(|r| r.uid == entry.message.uid);
                    if entry.record.is_none() {
                        entry.seq = 0; // Removed meanwhile.
                    }
                }
            }
            // In groups of about GROUP_BYTES of content, each read in one store call and, if
            // it needs text looked at, evaluated off the workers.
            let mut rest: &mut [Entry] = &mut entries;
            let mut reads: &[bool] = &read_content;
            while !rest.is_empty() {
                let mut len = 0;
                let mut bytes = 0u64;
                while len < rest.len() {
                    if reads[len] && rest[len].seq != 0 {
                        let size =
                            rest[len].record.as_ref().map_or(0, |r| if need.body { r.size } else { r.header_len });
                        if len > 0 && bytes + size > GROUP_BYTES {
                            break;
                        }
                        bytes += size;
                    }
                    len += 1;
                }
                let (group, after) = std::mem::take(&mut rest).split_at_mut(len);
                let (group_reads, after_reads) = reads.split_at(len);
                rest = after;
                reads = after_reads;
                let wanted: Vec<u32> = group
                    .iter()
                    .zip(group_reads)
                    .filter(|(e, &r)| r && e.seq != 0)
                    .map(|(e, _)| e.message.uid)
                    .collect();
                if !wanted.is_empty() {
                    let contents = if need.body {
                        store.message_raws(mailbox, &wanted).await
                    } else {
                        store.message_headers(mailbox, &wanted).await
                    }
                    .map_err(unavailable)?;
                    let mut contents = contents.into_iter().peekable();
                    for (entry, &read) in group.iter_mut().zip(group_reads) {
                        if read && entry.seq != 0 {
                            match contents.next_if(|(u, _)| *u == entry.message.uid) {
                                Some((_, content)) => entry.content = Some(content),
                                None => entry.seq = 0, // Removed meanwhile.
                            }
                        }
                    }
                }
                let group: Vec<Entry> =
                    group.iter_mut().filter(|e| e.seq != 0).map(|e| std::mem::replace(e, Entry::removed())).collect();
                if wanted.is_empty() {
                    for slice in group.chunks(per_yield) {
                        found.extend(evaluate(&criteria, ends, slice));
                        yield_now().await;
                    }
                } else {
                    let criteria = criteria.clone();
                    let matched = offloaded(env, move || evaluate(&criteria, ends, &group)).await;
                    found.extend(matched.ok_or_else(|| no("[UNAVAILABLE] Try again later"))?);
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
            // In message order, so UIDs ascending: `$` is looked up by binary search.
            self.saved = found.iter().map(|f| f.1).collect();
        }
        self.sync(env, command.uid, false).await?;
        self.tagged(tag, "OK SEARCH completed");
        Ok(self.after_command())
    }
}

impl Entry {
    /// What is left where an entry was taken out of its chunk.
    fn removed() -> Entry {
        Entry {
            seq: 0,
            message: MessageIndex { uid: 0, flags: Flags::default(), modseq: 0 },
            recent: false,
            saved: false,
            record: None,
            content: None,
            cache: None,
        }
    }
}
