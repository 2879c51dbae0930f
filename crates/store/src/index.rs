//! A mailbox's messages in compact form: UIDs, MODSEQs and system flags in flat arrays, the
//! (usually few) keywords apart, cut into chunks shared by reference count.
//!
//! The store keeps one [`MessageList`] per recently selected mailbox (see [`crate::index_cache`]) and
//! hands each SELECT a clone of it. A clone copies one pointer per chunk of [`CHUNK`] messages,
//! not the messages, so SELECT of a 100,000-message mailbox copies about a hundred pointers.
//! Whoever changes a list (a session applying STORE results or others' changes, the store
//! applying newly committed changes) copies only the chunks it touches: one chunk of 1,024
//! messages is about 13 KB.
//!
//! A message costs 13 bytes (4 UID, 8 MODSEQ, 1 flags) plus its keywords if it has any: a
//! 100,000-message mailbox is about 1.3 MB however many sessions have it selected.

use std::sync::Arc;

use crate::{Flags, MessageIndex};

/// Messages per chunk: large enough that a clone of a big list is cheap (one pointer per
/// chunk), small enough that copying one on write is too.
const CHUNK: usize = 1024;

#[derive(Clone, Default, Debug)]
struct Chunk {
    uids: Vec<u32>,
    modseqs: Vec<u64>,
    /// Bit set of `Flags::SEEN` and the others.
    flags: Vec<u8>,
    /// The keywords of the messages that have any, as (UID, keywords), by UID.
    keywords: Vec<(u32, Box<[String]>)>,
}

impl Chunk {
    fn with_capacity(n: usize) -> Chunk {
        Chunk {
            uids: Vec::with_capacity(n),
            modseqs: Vec::with_capacity(n),
            flags: Vec::with_capacity(n),
            keywords: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.uids.len()
    }

    fn push(&mut self, message: &MessageIndex) {
        self.uids.push(message.uid);
        self.modseqs.push(message.modseq);
        self.flags.push(message.flags.system & Flags::ALL);
        if !message.flags.keywords.is_empty() {
            self.keywords.push((message.uid, message.flags.keywords.clone().into_boxed_slice()));
        }
    }

    fn keywords_of(&self, uid: u32) -> &[String] {
        if self.keywords.is_empty() {
            return &[];
        }
        match self.keywords.binary_search_by_key(&uid, |(u, _)| *u) {
            Ok(at) => &self.keywords[at].1,
            Err(_) => &[],
        }
    }

    fn set_keywords(&mut self, uid: u32, keywords: &[String]) {
        match self.keywords.binary_search_by_key(&uid, |(u, _)| *u) {
            Ok(at) if keywords.is_empty() => {
                self.keywords.remove(at);
            }
            Ok(at) => self.keywords[at].1 = keywords.to_vec().into_boxed_slice(),
            Err(_) if keywords.is_empty() => {}
            Err(at) => self.keywords.insert(at, (uid, keywords.to_vec().into_boxed_slice())),
        }
    }

    fn bytes(&self) -> usize {
        let keywords: usize = self
            .keywords
            .iter()
            .map(|(_, k)| {
                std::mem::size_of::<(u32, Box<[String]>)>() + k.iter().map(|s| 24 + s.capacity()).sum::<usize>()
            })
            .sum();
        std::mem::size_of::<Chunk>()
            + self.uids.capacity() * 4
            + self.modseqs.capacity() * 8
            + self.flags.capacity()
            + keywords
    }
}

/// A message of a [`MessageList`], borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageRef<'a> {
    pub uid: u32,
    pub modseq: u64,
    /// Bit set of `Flags::SEEN` and the others.
    pub system: u8,
    pub keywords: &'a [String],
}

impl MessageRef<'_> {
    pub fn to_index(&self) -> MessageIndex {
        MessageIndex {
            uid: self.uid,
            flags: Flags { system: self.system, keywords: self.keywords.to_vec() },
            modseq: self.modseq,
        }
    }
}

/// The messages of a mailbox in UID order; position `i` is message sequence number `i + 1`.
/// Cloning is cheap (see the module documentation); methods that take a position panic when
/// it is out of range, like slice indexing.
#[derive(Clone, Default, Debug)]
pub struct MessageList {
    chunks: Vec<Arc<Chunk>>,
    /// The position of each chunk's first message.
    starts: Vec<usize>,
    len: usize,
}

impl MessageList {
    pub fn new() -> MessageList {
        MessageList::default()
    }

    /// From messages in ascending UID order (later duplicates or out-of-order UIDs are put
    /// in their place). Chunks are allocated at their exact size: a small mailbox costs
    /// little more than its messages.
    pub fn from_messages(messages: impl IntoIterator<Item = MessageIndex>) -> MessageList {
        let mut ordered = Vec::new();
        let mut out_of_order = Vec::new();
        for message in messages {
            if ordered.last().is_some_and(|last: &MessageIndex| message.uid <= last.uid) {
                out_of_order.push(message);
            } else {
                ordered.push(message);
            }
        }
        let mut list = MessageList::new();
        for part in ordered.chunks(CHUNK) {
            let mut chunk = Chunk::with_capacity(part.len());
            part.iter().for_each(|m| chunk.push(m));
            list.starts.push(list.len);
            list.len += part.len();
            list.chunks.push(Arc::new(chunk));
        }
        for message in out_of_order {
            list.upsert(&message);
        }
        list
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// (chunk, offset in it) of position `i`.
    fn locate(&self, i: usize) -> (usize, usize) {
        assert!(i < self.len, "message position {i} out of range (len {})", self.len);
        let c = self.starts.partition_point(|&s| s <= i) - 1;
        (c, i - self.starts[c])
    }

    pub fn uid(&self, i: usize) -> u32 {
        let (c, o) = self.locate(i);
        self.chunks[c].uids[o]
    }

    pub fn modseq(&self, i: usize) -> u64 {
        let (c, o) = self.locate(i);
        self.chunks[c].modseqs[o]
    }

    /// The system flags (bit set) of the message at `i`.
    pub fn system_flags(&self, i: usize) -> u8 {
        let (c, o) = self.locate(i);
        self.chunks[c].flags[o]
    }

    pub fn keywords(&self, i: usize) -> &[String] {
        let (c, o) = self.locate(i);
        let chunk = &self.chunks[c];
        chunk.keywords_of(chunk.uids[o])
    }

    pub fn at(&self, i: usize) -> MessageRef<'_> {
        let (c, o) = self.locate(i);
        let chunk = &self.chunks[c];
        let uid = chunk.uids[o];
        MessageRef { uid, modseq: chunk.modseqs[o], system: chunk.flags[o], keywords: chunk.keywords_of(uid) }
    }

    /// The message at `i`, owned (its keywords copied).
    pub fn get(&self, i: usize) -> MessageIndex {
        self.at(i).to_index()
    }

    pub fn last_uid(&self) -> Option<u32> {
        self.chunks.last().and_then(|c| c.uids.last().copied())
    }

    /// How many messages have a UID below `uid`: the position `uid` has or would have.
    pub fn partition_point(&self, uid: u32) -> usize {
        let c = self.chunks.partition_point(|chunk| chunk.uids.last().is_some_and(|&last| last < uid));
        match self.chunks.get(c) {
            Some(chunk) => self.starts[c] + chunk.uids.partition_point(|&u| u < uid),
            None => self.len,
        }
    }

    /// The position of the message with this UID.
    pub fn position(&self, uid: u32) -> Option<usize> {
        let at = self.partition_point(uid);
        (at < self.len && self.uid(at) == uid).then_some(at)
    }

    /// Every message in order.
    pub fn iter(&self) -> impl Iterator<Item = MessageRef<'_>> + '_ {
        self.chunks.iter().flat_map(|chunk| {
            (0..chunk.len()).map(move |o| {
                let uid = chunk.uids[o];
                MessageRef { uid, modseq: chunk.modseqs[o], system: chunk.flags[o], keywords: chunk.keywords_of(uid) }
            })
        })
    }

    /// The UIDs in order.
    pub fn uids(&self) -> impl Iterator<Item = u32> + '_ {
        self.chunks.iter().flat_map(|chunk| chunk.uids.iter().copied())
    }

    /// The position of the first message whose system flags satisfy `test`.
    pub fn first_where(&self, test: impl Fn(u8) -> bool) -> Option<usize> {
        for (c, chunk) in self.chunks.iter().enumerate() {
            if let Some(o) = chunk.flags.iter().position(|&f| test(f)) {
                return Some(self.starts[c] + o);
            }
        }
        None
    }

    /// Gives the message at `i` the flags and MODSEQ of `message` (whose UID it must have).
    pub fn set(&mut self, i: usize, message: &MessageIndex) {
        let (c, o) = self.locate(i);
        let chunk = Arc::make_mut(&mut self.chunks[c]);
        debug_assert_eq!(chunk.uids[o], message.uid);
        chunk.modseqs[o] = message.modseq;
        chunk.flags[o] = message.flags.system & Flags::ALL;
        chunk.set_keywords(chunk.uids[o], &message.flags.keywords);
    }

    pub fn set_modseq(&mut self, i: usize, modseq: u64) {
        let (c, o) = self.locate(i);
        if self.chunks[c].modseqs[o] != modseq {
            Arc::make_mut(&mut self.chunks[c]).modseqs[o] = modseq;
        }
    }

    /// Appends a message; its UID must be above every UID in the list (see [`Self::upsert`]
    /// otherwise).
    pub fn push(&mut self, message: &MessageIndex) {
        assert!(self.last_uid().is_none_or(|last| message.uid > last), "UIDs must ascend");
        match self.chunks.last_mut() {
            Some(last) if last.len() < CHUNK => Arc::make_mut(last).push(message),
            _ => {
                let mut chunk = Chunk::default();
                chunk.push(message);
                self.starts.push(self.len);
                self.chunks.push(Arc::new(chunk));
            }
        }
        self.len += 1;
    }

    /// Updates the message with this UID, or adds it in its place.
    pub fn upsert(&mut self, message: &MessageIndex) {
        if let Some(i) = self.position(message.uid) {
            self.set(i, message);
        } else if self.last_uid().is_none_or(|last| message.uid > last) {
            self.push(message);
        } else {
            // Never in normal operation (UIDs are handed out in ascending order): rebuild.
            let mut all: Vec<MessageIndex> = self.iter().map(|m| m.to_index()).collect();
            let at = all.partition_point(|m| m.uid < message.uid);
            all.insert(at, message.clone());
            *self = MessageList::from_messages(all);
        }
    }

    /// Removes the messages with these UIDs (missing ones are ignored).
    pub fn remove_uids(&mut self, uids: &[u32]) {
        if uids.is_empty() || self.is_empty() {
            return;
        }
        if !uids.windows(2).all(|w| w[0] < w[1]) {
            let mut sorted = uids.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            return self.remove_uids(&sorted);
        }
        let mut removed_any = false;
        for c in 0..self.chunks.len() {
            let chunk = &self.chunks[c];
            let (first, last) = (chunk.uids[0], chunk.uids[chunk.len() - 1]);
            let lo = uids.partition_point(|&u| u < first);
            let hi = uids.partition_point(|&u| u <= last);
            if lo == hi {
                continue;
            }
            let doomed = &uids[lo..hi];
            if !chunk.uids.iter().any(|u| doomed.binary_search(u).is_ok()) {
                continue;
            }
            let chunk = Arc::make_mut(&mut self.chunks[c]);
            let mut kept = Chunk::with_capacity(chunk.len());
            for o in 0..chunk.len() {
                let uid = chunk.uids[o];
                if doomed.binary_search(&uid).is_err() {
                    kept.uids.push(uid);
                    kept.modseqs.push(chunk.modseqs[o]);
                    kept.flags.push(chunk.flags[o]);
                }
            }
            kept.keywords = std::mem::take(&mut chunk.keywords);
            kept.keywords.retain(|(uid, _)| doomed.binary_search(uid).is_err());
            *chunk = kept;
            removed_any = true;
        }
        if removed_any {
            self.chunks.retain(|c| c.len() > 0);
            self.renumber();
            // Many expunges can leave many small chunks: merge them back when there are
            // twice as many as needed.
            if self.chunks.len() > 2 * self.len.div_ceil(CHUNK) + 1 {
                self.compact();
            }
        }
    }

    fn renumber(&mut self) {
        self.starts.clear();
        let mut at = 0;
        for chunk in &self.chunks {
            self.starts.push(at);
            at += chunk.len();
        }
        self.len = at;
    }

    fn compact(&mut self) {
        let all: Vec<MessageIndex> = self.iter().map(|m| m.to_index()).collect();
        *self = MessageList::from_messages(all);
    }

    /// Bytes of memory held (shared chunks counted in full).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<MessageList>()
            + self.chunks.iter().map(|c| c.bytes() + std::mem::size_of::<Arc<Chunk>>() + 16).sum::<usize>()
            + self.starts.capacity() * std::mem::size_of::<usize>()
    }

    /// Whether another list (a clone) still shares any of this list's chunks.
    pub fn is_shared(&self) -> bool {
        self.chunks.iter().any(|c| Arc::strong_count(c) > 1)
    }
}

impl PartialEq for MessageList {
    fn eq(&self, other: &MessageList) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl Eq for MessageList {}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(uid: u32, system: u8, keywords: &[&str], modseq: u64) -> MessageIndex {
        MessageIndex {
            uid,
            flags: Flags { system, keywords: keywords.iter().map(|k| k.to_string()).collect() },
            modseq,
        }
    }

    fn plain(n: u32) -> Vec<MessageIndex> {
        (1..=n).map(|uid| message(uid * 2, (uid % 2) as u8, &[], u64::from(uid))).collect()
    }

    /// The list and a plain vector, changed the same way, must agree.
    fn agree(list: &MessageList, model: &[MessageIndex]) {
        assert_eq!(list.len(), model.len());
        let all: Vec<MessageIndex> = list.iter().map(|m| m.to_index()).collect();
        assert_eq!(all, model);
        for (i, m) in model.iter().enumerate() {
            assert_eq!(list.get(i), *m);
            assert_eq!(list.position(m.uid), Some(i));
            assert_eq!(list.position(m.uid + 1), model.binary_search_by_key(&(m.uid + 1), |m| m.uid).ok());
            assert_eq!(list.partition_point(m.uid), i);
        }
        assert_eq!(list.last_uid(), model.last().map(|m| m.uid));
        assert_eq!(list.partition_point(u32::MAX), model.len());
    }

    #[test]
    fn builds_reads_and_finds() {
        let model = plain(3000);
        let list = MessageList::from_messages(model.clone());
        agree(&list, &model);
        assert_eq!(list.chunks.len(), 3);
        assert_eq!(list.first_where(|f| f & Flags::SEEN == 0), Some(1));
        assert_eq!(list.first_where(|f| f & Flags::DELETED != 0), None);
        assert_eq!(list.uids().count(), 3000);
        assert!(MessageList::new().is_empty());
        assert_eq!(MessageList::new().partition_point(5), 0);
    }

    #[test]
    fn out_of_order_input_is_sorted() {
        let list = MessageList::from_messages([message(5, 0, &[], 1), message(3, 1, &[], 2), message(5, 2, &[], 3)]);
        agree(&list, &[message(3, 1, &[], 2), message(5, 2, &[], 3)]);
    }

    #[test]
    fn changes_copy_only_what_they_touch() {
        let mut model = plain(5000);
        let original = MessageList::from_messages(model.clone());
        let mut list = original.clone();
        assert!(original.is_shared());

        // Flags and keywords.
        model[10] = message(model[10].uid, Flags::FLAGGED, &["$Work", "later"], 9000);
        list.set(10, &model[10]);
        model[4000] = message(model[4000].uid, 0, &["x"], 9001);
        list.set(4000, &model[4000]);
        agree(&list, &model);
        model[10].flags.keywords.clear();
        list.set(10, &model[10]);
        model[11].modseq = 9002;
        list.set_modseq(11, 9002);
        agree(&list, &model);
        // Only the two chunks written to were copied.
        let shared = list.chunks.iter().zip(&original.chunks).filter(|(a, b)| Arc::ptr_eq(a, b)).count();
        assert_eq!(shared, original.chunks.len() - 2);
        // The original is untouched.
        agree(&original, &plain(5000));

        // Appends.
        for uid in 20_000..21_500 {
            let m = message(uid, Flags::SEEN, if uid % 7 == 0 { &["k"] } else { &[] }, 9003);
            list.push(&m);
            model.push(m);
        }
        agree(&list, &model);

        // Removals, including whole chunks and missing UIDs.
        let doomed: Vec<u32> =
            model.iter().map(|m| m.uid).filter(|u| u % 3 == 0 || (2000..4100).contains(u)).chain([1, 3]).collect();
        let mut doomed_sorted = doomed.clone();
        doomed_sorted.sort_unstable();
        doomed_sorted.dedup();
        list.remove_uids(&doomed_sorted);
        model.retain(|m| doomed_sorted.binary_search(&m.uid).is_err());
        agree(&list, &model);
        agree(&original, &plain(5000));

        // Upserts: existing, new at the end, and (never in practice) new in the middle.
        let existing = message(model[5].uid, Flags::DRAFT, &["a"], 9100);
        list.upsert(&existing);
        model[5] = existing;
        let end = message(30_000, 0, &[], 9101);
        list.upsert(&end);
        model.push(end);
        let middle = message(model[100].uid + 1, 0, &[], 9102);
        list.upsert(&middle);
        model.insert(101, middle);
        agree(&list, &model);
    }

    #[test]
    fn many_removals_merge_chunks() {
        let model = plain(10 * CHUNK as u32);
        let mut list = MessageList::from_messages(model.clone());
        // Keep one message in four in the first 9 chunks.
        let doomed: Vec<u32> = model.iter().map(|m| m.uid).filter(|u| u % 8 != 0 && *u < 18 * CHUNK as u32).collect();
        list.remove_uids(&doomed);
        let kept: Vec<MessageIndex> = model.into_iter().filter(|m| doomed.binary_search(&m.uid).is_err()).collect();
        agree(&list, &kept);
        assert!(list.chunks.len() <= 2 * list.len().div_ceil(CHUNK) + 1);
        list.remove_uids(&kept.iter().map(|m| m.uid).collect::<Vec<_>>());
        assert!(list.is_empty());
        assert_eq!(list.last_uid(), None);
        agree(&list, &[]);
    }

    #[test]
    fn memory_is_compact() {
        let list = MessageList::from_messages((1..=100_000).map(|uid| message(uid, Flags::SEEN, &[], 7)));
        let bytes = list.memory_bytes();
        assert!(bytes < 1_400_000, "{bytes} bytes for 100,000 messages");
        let small = MessageList::from_messages((1..=10).map(|uid| message(uid, 0, &[], 7)));
        assert!(small.memory_bytes() < 512, "{} bytes for 10 messages", small.memory_bytes());
        let mut grown = MessageList::new();
        (1..=10).for_each(|uid| grown.push(&message(uid, 0, &[], 7)));
        assert!(grown.memory_bytes() < 1024, "{} bytes for 10 messages pushed", grown.memory_bytes());
    }
}
