//! FETCH and UID FETCH, answered so that what one command makes the server hold stays small
//! whatever the mailbox holds and whatever the client asks (issue 13, item 1):
//!
//! - items are deduplicated: `BODY.PEEK[]` named 400 times is answered once (`BODY.PEEK[x]`
//!   and `BODY[x]` give the same response item);
//! - the output goes to the driver whenever it reaches [`FLUSH_AT`] bytes, in the middle of a
//!   message if need be ([`Progress::More`]): a client that stops reading holds the session
//!   at that, and the driver cuts it off after the idle timeout;
//! - bodies are never copied whole: a section is a range of the stored message
//!   (`portcullis_mime::locate`) sent [`PIECE`] bytes at a time, read from the store as it goes,
//!   unless the message was small enough to be read with its neighbours ([`GROUP_BYTES`] at a
//!   time);
//! - the MIME structure is parsed once per message for every section named, off the workers
//!   every session shares ([`Environment::offload`]); a large message is read whole only for
//!   that parse, and dropped after it;
//! - what has to be made (HEADER.FIELDS, decoded BINARY parts) may not exceed the message's own
//!   size, and one FETCH names at most [`MAX_SECTIONS`] distinct sections.

use std::collections::VecDeque;

use portcullis_mime::{Found, Wanted};
use portcullis_store::{Flags, MessageRecord};

use super::{no, offloaded, Answer, Environment, Progress, Session, State};
use crate::command::{FetchCommand, FetchItem, Section, SectionText};
use crate::encode;

/// Output handed to the driver once it reaches this.
const FLUSH_AT: usize = 256 * 1024;
/// A literal is written (and, from the store, read) this much at a time; a message whose bytes
/// needed are larger is not read with others.
const PIECE: usize = 256 * 1024;
/// Small messages are read together, up to this many bytes at a time.
const GROUP_BYTES: usize = 1 << 20;
/// Messages whose records (dates, sizes, structures) are read in one store call.
const BATCH: usize = 250;
/// Distinct sections (part numbers with HEADER.FIELDS, MIME, BINARY...) one FETCH may name:
/// each costs work on every message fetched. Clients name a handful.
const MAX_SECTIONS: usize = 100;
/// Bytes a message's made sections may take beyond the message's own size.
const MADE_SLACK: usize = 64 * 1024;

pub struct PendingFetch {
    tag: String,
    uid_command: bool,
    plan: Plan,
    /// Indexes into the view still to answer, ascending.
    indexes: Vec<usize>,
    /// The next of `indexes` to prepare.
    next: usize,
    /// Set \Seen on what is fetched (a non-PEEK body fetch on a read-write mailbox).
    mark_seen: bool,
    unknown_cte: bool,
    /// Prepared (records read, \Seen set), not yet written.
    ready: VecDeque<Prepared>,
    /// The message being written when the output reached [`FLUSH_AT`].
    writing: Option<Writing>,
}

/// What the items need of each message, decided once per command.
struct Plan {
    /// Deduplicated, in the order asked.
    items: Vec<FetchItem>,
    /// For each item, what it asks of the message's bytes that only a parse can tell: an index
    /// into `wanted`.
    want: Vec<Option<usize>>,
    wanted: Vec<Wanted>,
    content: Content,
    /// Records are read: for the items that answer from them, and for the sizes of what
    /// content is read.
    record: bool,
}

/// Which bytes of each message the items need.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Content {
    None,
    /// The header section only (BODY[HEADER], HEADER.FIELDS, RFC822.HEADER).
    Header,
    Raw,
}

struct Prepared {
    index: usize,
    uid: u32,
    record: Option<MessageRecord>,
    newly_seen: bool,
    /// Removed meanwhile: nothing is written (the client hears of it at the next sync).
    gone: bool,
    /// The content is read (if small) and the sections located.
    located: bool,
    /// The content, when small enough to be read with its neighbours.
    bytes: Option<Vec<u8>>,
    /// Where each of the plan's `wanted` is.
    found: Vec<Found>,
}

impl Prepared {
    /// The length of the content the plan reads.
    fn content_len(&self, content: Content) -> u64 {
        let Some(record) = &self.record else { return 0 };
        match content {
            Content::None => 0,
            Content::Header => record.header_len.min(record.size),
            Content::Raw => record.size,
        }
    }
}

/// A message's response, written item by item.
struct Writing {
    message: Prepared,
    /// The next item to write.
    item: usize,
    /// The literal being written.
    pour: Option<Pour>,
}

/// What is left of a literal: bytes `at..end` of its source.
struct Pour {
    source: Source,
    at: u64,
    end: u64,
}

#[derive(Clone, Copy)]
enum Source {
    /// The message's bytes as read with its neighbours.
    Read,
    /// The message in the store, read a piece at a time.
    Store,
    /// A made section: `found[k]`.
    Made(usize),
}

/// The data an item answers with, before its partial is applied.
enum Data {
    Nil,
    Bytes { source: Source, start: u64, end: u64, nul: bool },
}

/// Why a FETCH stops before its end.
enum Stop {
    Answer(Answer),
    /// The message being sent was removed, in the middle of a literal: the connection must go.
    Gone,
}

impl From<Answer> for Stop {
    fn from(answer: Answer) -> Stop {
        Stop::Answer(answer)
    }
}

fn unavailable<E>(_: E) -> Answer {
    no("[UNAVAILABLE] Try again later")
}

/// The item as it appears in the response: PEEK or not is the same item.
fn response_item(item: &FetchItem) -> FetchItem {
    match item.clone() {
        FetchItem::BodySection { section, partial, legacy, .. } => {
            FetchItem::BodySection { peek: false, section, partial, legacy }
        }
        FetchItem::Binary { part, partial, .. } => FetchItem::Binary { peek: false, part, partial },
        other => other,
    }
}

impl Plan {
    fn new(asked: Vec<FetchItem>) -> Result<Plan, Answer> {
        let mut items: Vec<FetchItem> = Vec::with_capacity(asked.len());
        let mut seen: Vec<FetchItem> = Vec::with_capacity(asked.len());
        for item in asked {
            let key = response_item(&item);
            if !seen.contains(&key) {
                seen.push(key);
                items.push(item);
            }
        }
        let mut plan = Plan {
            want: Vec::with_capacity(items.len()),
            wanted: Vec::new(),
            items: Vec::new(),
            content: Content::None,
            record: false,
        };
        for item in &items {
            let (want, content) = match item {
                FetchItem::Flags | FetchItem::Uid | FetchItem::ModSeq => (None, Content::None),
                FetchItem::InternalDate
                | FetchItem::Rfc822Size
                | FetchItem::Envelope
                | FetchItem::Body
                | FetchItem::BodyStructure => {
                    plan.record = true;
                    (None, Content::None)
                }
                // The whole message's decoded size is its size.
                FetchItem::BinarySize { part } if part.is_empty() => {
                    plan.record = true;
                    (None, Content::None)
                }
                FetchItem::BodySection { section, .. } => match (&section.part[..], &section.text) {
                    // Ranges the record's sizes give.
                    ([], None | Some(SectionText::Text)) => (None, Content::Raw),
                    ([], Some(SectionText::Header)) => (None, Content::Header),
                    // The parser never makes it; the message as a whole has no MIME header.
                    ([], Some(SectionText::Mime)) => (None, Content::None),
                    ([], Some(SectionText::HeaderFields(_) | SectionText::HeaderFieldsNot(_))) => {
                        (Some(Wanted::Body(section.clone())), Content::Header)
                    }
                    _ => (Some(Wanted::Body(section.clone())), Content::Raw),
                },
                // Even for the whole message: whether it holds NUL decides literal8.
                FetchItem::Binary { part, .. } | FetchItem::BinarySize { part } => {
                    (Some(Wanted::Binary(part.clone())), Content::Raw)
                }
            };
            plan.content = match (plan.content, content) {
                (Content::Raw, _) | (_, Content::Raw) => Content::Raw,
                (Content::Header, _) | (_, Content::Header) => Content::Header,
                _ => Content::None,
            };
            plan.want.push(match want {
                Some(wanted) => Some(match plan.wanted.iter().position(|w| *w == wanted) {
                    Some(k) => k,
                    None => {
                        if plan.wanted.len() == MAX_SECTIONS {
                            return Err(no(format!("[LIMIT] At most {MAX_SECTIONS} distinct sections in one FETCH")));
                        }
                        plan.wanted.push(wanted);
                        plan.wanted.len() - 1
                    }
                }),
                None => None,
            });
        }
        if plan.content != Content::None {
            plan.record = true;
        }
        plan.items = items;
        Ok(plan)
    }
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
                let changes = env.store().changes_since(view.id, since).await.map_err(unavailable)?;
                let largest = view.largest_uid().max(view.uidnext.saturating_sub(1));
                // Expunged UIDs ascend; the set is looked up, never scanned.
                let mut gone: Vec<u32> =
                    changes.expunged.into_iter().filter(|&u| command.set.contains(u, largest)).collect();
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
            plan: Plan::new(items)?,
            indexes,
            next: 0,
            mark_seen,
            unknown_cte: false,
            ready: VecDeque::new(),
            writing: None,
        };
        Ok(self.fetch_more(env, pending).await)
    }

    /// Answers until the output reaches [`FLUSH_AT`] (then [`Progress::More`]) or the end.
    pub(super) async fn fetch_more(&mut self, env: &dyn Environment, mut p: PendingFetch) -> Progress {
        loop {
            if self.out.len() >= FLUSH_AT {
                self.pending = Some(super::Pending::Fetch(Box::new(p)));
                return Progress::More;
            }
            let step = match p.writing.take() {
                Some(writing) => self.write_message(env, &mut p, writing).await,
                None => match self.next_message(env, &mut p).await {
                    Ok(true) => Ok(()),
                    Ok(false) => break,
                    Err(answer) => Err(Stop::Answer(answer)),
                },
            };
            match step {
                Ok(()) => {}
                Err(Stop::Answer(answer)) => {
                    let text = match answer {
                        Answer::No(t) => format!("NO {t}"),
                        Answer::Bad(t) => format!("BAD {t}"),
                    };
                    self.tagged(&p.tag, &text);
                    return Progress::Ready;
                }
                Err(Stop::Gone) => return Progress::Close,
            }
        }
        let _ = self.sync(env, p.uid_command, false).await;
        if p.unknown_cte {
            self.tagged(&p.tag, "NO [UNKNOWN-CTE] A part has a content transfer encoding that cannot be decoded");
        } else {
            self.tagged(&p.tag, "OK FETCH completed");
        }
        Progress::Ready
    }

    /// Starts the next message's response (preparing a batch, reading content as needed);
    /// false when every message has been answered.
    async fn next_message(&mut self, env: &dyn Environment, p: &mut PendingFetch) -> Result<bool, Answer> {
        loop {
            match p.ready.front() {
                None if p.next >= p.indexes.len() => return Ok(false),
                None => self.prepare_batch(env, p).await?,
                Some(m) if m.gone => {
                    p.ready.pop_front();
                }
                Some(m) if !m.located => self.read_content(env, p).await?,
                Some(_) => {
                    let Some(message) = p.ready.pop_front() else { continue };
                    self.out.extend_from_slice(format!("* {} FETCH (", message.index + 1).as_bytes());
                    p.writing = Some(Writing { message, item: 0, pour: None });
                    return Ok(true);
                }
            }
        }
    }

    /// The next [`BATCH`] messages: \Seen set where the command reads bodies, records read.
    async fn prepare_batch(&mut self, env: &dyn Environment, p: &mut PendingFetch) -> Result<(), Answer> {
        let store = env.store();
        let batch: Vec<usize> = p.indexes[p.next..(p.next + BATCH).min(p.indexes.len())].to_vec();
        p.next += batch.len();
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
                newly_seen.sort_unstable();
            }
        }
        let records =
            if p.plan.record { store.message_records(mailbox, &uids).await.map_err(unavailable)? } else { Vec::new() };
        let mut records = records.into_iter().peekable();
        for (&index, &uid) in batch.iter().zip(&uids) {
            let record = records.next_if(|r| r.uid == uid);
            p.ready.push_back(Prepared {
                index,
                uid,
                gone: p.plan.record && record.is_none(),
                record,
                newly_seen: newly_seen.binary_search(&uid).is_ok(),
                located: p.plan.content == Content::None,
                bytes: None,
                found: Vec::new(),
            });
        }
        Ok(())
    }

    /// Reads the content of the first prepared message, with as many small ones after it as
    /// fit in [`GROUP_BYTES`], and locates the sections named in each, off the workers. A large
    /// message is read whole only when sections must be located in it, and not kept.
    async fn read_content(&mut self, env: &dyn Environment, p: &mut PendingFetch) -> Result<(), Answer> {
        let store = env.store();
        let mailbox = self.view()?.id;
        let content = p.plan.content;
        let first_len = p.ready.front().map_or(0, |m| m.content_len(content));
        let large = first_len > PIECE as u64;
        if large && p.plan.wanted.is_empty() {
            // Only ranges the record gives: read from the store as they are sent.
            if let Some(m) = p.ready.front_mut() {
                m.located = true;
            }
            return Ok(());
        }
        let mut group = Vec::new();
        let mut total = 0;
        for (i, m) in p.ready.iter().enumerate() {
            let len = m.content_len(content);
            if m.gone || m.located {
                if i == 0 {
                    break;
                }
                continue;
            }
            if i > 0 && (large || len > PIECE as u64 || total + len > GROUP_BYTES as u64) {
                break;
            }
            total += len;
            group.push(m.uid);
        }
        let read = match content {
            Content::Header => store.message_headers(mailbox, &group).await,
            _ => store.message_raws(mailbox, &group).await,
        }
        .map_err(unavailable)?;
        let wanted = p.plan.wanted.clone();
        let located: Vec<(u32, Vec<u8>, Vec<Found>)> = if wanted.is_empty() {
            read.into_iter().map(|(uid, bytes)| (uid, bytes, Vec::new())).collect()
        } else {
            offloaded(env, move || {
                read.into_iter()
                    .map(|(uid, bytes)| {
                        let found = portcullis_mime::locate(&bytes, &wanted, bytes.len() + MADE_SLACK);
                        (uid, bytes, found)
                    })
                    .collect()
            })
            .await
            .ok_or_else(|| no("[UNAVAILABLE] Try again later"))?
        };
        let mut located = located.into_iter().peekable();
        for m in p.ready.iter_mut().filter(|m| group.contains(&m.uid)) {
            match located.next_if(|(uid, _, _)| *uid == m.uid) {
                Some((_, bytes, found)) => {
                    if found.contains(&Found::TooLarge) {
                        return Err(no(
                            "[LIMIT] The sections asked of one message would be larger than the message; ask for fewer",
                        ));
                    }
                    m.found = found;
                    // A large message was read only to locate its sections.
                    m.bytes = (!large).then_some(bytes);
                }
                None => m.gone = true,
            }
            m.located = true;
        }
        Ok(())
    }

    /// Writes what it can of a message's response; stops (keeping it in `p.writing`) when
    /// the output reaches [`FLUSH_AT`] in the middle of a literal.
    async fn write_message(&mut self, env: &dyn Environment, p: &mut PendingFetch, mut w: Writing) -> Result<(), Stop> {
        loop {
            if let Some(pour) = &mut w.pour {
                while pour.at < pour.end {
                    if self.out.len() >= FLUSH_AT {
                        p.writing = Some(w);
                        return Ok(());
                    }
                    let n = (pour.end - pour.at).min(PIECE as u64);
                    match pour.source {
                        Source::Read => {
                            let bytes = w.message.bytes.as_deref().unwrap_or_default();
                            self.out.extend_from_slice(&bytes[pour.at as usize..(pour.at + n) as usize]);
                        }
                        Source::Made(k) => {
                            let bytes = match &w.message.found[k] {
                                Found::Bytes(bytes) => bytes.as_slice(),
                                _ => &[],
                            };
                            self.out.extend_from_slice(&bytes[pour.at as usize..(pour.at + n) as usize]);
                        }
                        Source::Store => {
                            let mailbox = self.view()?.id;
                            let piece = env
                                .store()
                                .message_bytes(mailbox, w.message.uid, pour.at, n as usize)
                                .await
                                .map_err(|_| Stop::Gone)?;
                            // Gone, or shorter than the record said: the literal cannot be
                            // finished, and a literal cut short cannot be told from the rest.
                            match piece {
                                Some(piece) if piece.len() as u64 == n => self.out.extend_from_slice(&piece),
                                _ => return Err(Stop::Gone),
                            }
                        }
                    }
                    pour.at += n;
                }
                w.pour = None;
            }
            if w.item == p.plan.items.len() {
                self.finish_message(&p.plan, &w.message)?;
                return Ok(());
            }
            if w.item > 0 {
                self.out.push(b' ');
            }
            w.pour = self.write_item(p, &w.message, w.item)?;
            w.item += 1;
        }
    }

    /// Writes item `i` of the plan; the literal it starts, if any.
    fn write_item(&mut self, p: &mut PendingFetch, m: &Prepared, i: usize) -> Result<Option<Pour>, Answer> {
        let State::Selected(view) = &self.state else { return Err(no("No mailbox selected")) };
        let message = view.messages.at(m.index);
        let recent = view.recent.contains(m.uid);
        let record = m.record.as_ref();
        let out = &mut self.out;
        match &p.plan.items[i] {
            FetchItem::Uid => out.extend_from_slice(format!("UID {}", m.uid).as_bytes()),
            FetchItem::Flags => {
                out.extend_from_slice(b"FLAGS ");
                encode::flags(out, &message.to_index().flags, recent);
            }
            FetchItem::ModSeq => out.extend_from_slice(format!("MODSEQ ({})", message.modseq).as_bytes()),
            FetchItem::InternalDate => {
                let date = record.map(|r| r.internal_date).unwrap_or(0);
                out.extend_from_slice(format!("INTERNALDATE \"{}\"", crate::time::internal_date(date)).as_bytes());
            }
            FetchItem::Rfc822Size => {
                out.extend_from_slice(format!("RFC822.SIZE {}", record.map(|r| r.size).unwrap_or(0)).as_bytes())
            }
            FetchItem::Envelope => {
                out.extend_from_slice(b"ENVELOPE ");
                out.extend_from_slice(record.map(|r| &r.envelope[..]).unwrap_or(b"NIL"));
            }
            FetchItem::Body => {
                out.extend_from_slice(b"BODY ");
                out.extend_from_slice(record.map(|r| &r.body[..]).unwrap_or(b"NIL"));
            }
            FetchItem::BodyStructure => {
                out.extend_from_slice(b"BODYSTRUCTURE ");
                out.extend_from_slice(record.map(|r| &r.bodystructure[..]).unwrap_or(b"NIL"));
            }
            FetchItem::BodySection { section, partial, legacy, .. } => {
                match legacy {
                    Some(name) => out.extend_from_slice(name.as_bytes()),
                    None => {
                        out.extend_from_slice(b"BODY[");
                        out.extend_from_slice(section_name(section).as_bytes());
                        out.push(b']');
                    }
                }
                let data = data(&p.plan, m, i, Some(section), &mut p.unknown_cte);
                return Ok(write_literal(out, data, *partial, false));
            }
            FetchItem::Binary { part, partial, .. } => {
                out.extend_from_slice(format!("BINARY[{}]", part_name(part)).as_bytes());
                let data = data(&p.plan, m, i, None, &mut p.unknown_cte);
                return Ok(write_literal(out, data, *partial, true));
            }
            FetchItem::BinarySize { part } => {
                let size = match p.plan.want[i].and_then(|k| m.found.get(k)) {
                    None if part.is_empty() => record.map(|r| r.size.to_string()),
                    Some(Found::Range { range, .. }) => Some(range.len().to_string()),
                    Some(Found::Bytes(bytes)) => Some(bytes.len().to_string()),
                    Some(Found::UnknownEncoding) => {
                        p.unknown_cte = true;
                        None
                    }
                    _ => None,
                };
                let size = size.unwrap_or_else(|| "NIL".into());
                out.extend_from_slice(format!("BINARY.SIZE[{}] {size}", part_name(part)).as_bytes());
            }
        }
        Ok(None)
    }

    /// The FLAGS a body fetch changed when they were not asked for, and the end of the
    /// response.
    fn finish_message(&mut self, plan: &Plan, m: &Prepared) -> Result<(), Answer> {
        if m.newly_seen && !plan.items.contains(&FetchItem::Flags) {
            let State::Selected(view) = &self.state else { return Err(no("No mailbox selected")) };
            let flags = view.messages.at(m.index).to_index().flags;
            let recent = view.recent.contains(m.uid);
            self.out.extend_from_slice(b" FLAGS ");
            encode::flags(&mut self.out, &flags, recent);
        }
        self.out.extend_from_slice(b")\r\n");
        Ok(())
    }
}

/// Where the data of item `i` is: a section located in the message, or a range its record
/// gives (`section`, for the top-level BODY[], BODY[TEXT] and BODY[HEADER]).
fn data(plan: &Plan, m: &Prepared, i: usize, section: Option<&Section>, unknown_cte: &mut bool) -> Data {
    // Ranges are of the message's bytes; the bytes read, when they were, begin with them.
    let source = |end: u64| match &m.bytes {
        Some(bytes) if bytes.len() as u64 >= end => Source::Read,
        _ => Source::Store,
    };
    if let Some(k) = plan.want[i] {
        return match m.found.get(k) {
            Some(Found::Range { range, nul }) => {
                let (start, end) = (range.start as u64, range.end as u64);
                Data::Bytes { source: source(end), start, end, nul: *nul }
            }
            Some(Found::Bytes(bytes)) => {
                Data::Bytes { source: Source::Made(k), start: 0, end: bytes.len() as u64, nul: bytes.contains(&0) }
            }
            Some(Found::UnknownEncoding) => {
                *unknown_cte = true;
                Data::Nil
            }
            _ => Data::Nil,
        };
    }
    let (Some(record), Some(section)) = (&m.record, section) else { return Data::Nil };
    let header = record.header_len.min(record.size);
    let (start, end) = match &section.text {
        None => (0, record.size),
        Some(SectionText::Text) => (header, record.size),
        Some(SectionText::Header) => (0, header),
        _ => return Data::Nil,
    };
    Data::Bytes { source: source(end), start, end, nul: false }
}

/// `<start>` and the literal's announcement (a literal8 for binary data holding NUL, RFC
/// 3516), or NIL when the section does not exist; the bytes to pour after it.
fn write_literal(out: &mut Vec<u8>, data: Data, partial: Option<(u64, u64)>, binary: bool) -> Option<Pour> {
    let Data::Bytes { source, start, end, nul } = data else {
        out.extend_from_slice(b" NIL");
        return None;
    };
    let (start, end) = match partial {
        Some((offset, length)) => {
            out.extend_from_slice(format!("<{offset}>").as_bytes());
            let from = start.saturating_add(offset).min(end);
            (from, from.saturating_add(length).min(end))
        }
        None => (start, end),
    };
    let tilde = if binary && nul { "~" } else { "" };
    out.extend_from_slice(format!(" {tilde}{{{}}}\r\n", end - start).as_bytes());
    Some(Pour { source, at: start, end })
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
