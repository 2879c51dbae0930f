//! Client commands as parsed (RFC 9051 §6 and the extensions Portcullis offers). Mailbox names
//! are kept as sent; the session decodes them (modified UTF-7 or UTF-8) because which applies
//! depends on what the client enabled.

pub use portcullis_mime::{Section, SectionText};
use zeroize::Zeroizing;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub tag: String,
    pub body: CommandBody,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandBody {
    // Any state.
    Capability,
    Noop,
    Logout,
    /// RFC 2971: client parameters, `None` for NIL.
    Id(Option<Vec<(String, Option<String>)>>),

    // Not authenticated.
    StartTls,
    Login {
        username: Vec<u8>,
        password: Zeroizing<Vec<u8>>,
    },
    Authenticate {
        mechanism: String,
        initial_response: Option<Vec<u8>>,
    },

    // Authenticated.
    Enable(Vec<String>),
    Select {
        mailbox: Vec<u8>,
        read_only: bool,
        params: SelectParams,
    },
    Create {
        mailbox: Vec<u8>,
        special_use: Vec<String>,
    },
    Delete {
        mailbox: Vec<u8>,
    },
    Rename {
        from: Vec<u8>,
        to: Vec<u8>,
    },
    Subscribe {
        mailbox: Vec<u8>,
    },
    Unsubscribe {
        mailbox: Vec<u8>,
    },
    List(ListCommand),
    Lsub {
        reference: Vec<u8>,
        pattern: Vec<u8>,
    },
    Namespace,
    Status {
        mailbox: Vec<u8>,
        items: Vec<StatusItem>,
    },
    Append {
        mailbox: Vec<u8>,
        flags: Vec<Flag>,
        date: Option<i64>,
        message: Vec<u8>,
    },
    Idle,
    GetQuota {
        root: Vec<u8>,
    },
    GetQuotaRoot {
        mailbox: Vec<u8>,
    },
    SetQuota {
        root: Vec<u8>,
        limits: Vec<(String, u64)>,
    },

    // Selected.
    Check,
    Close,
    Unselect,
    /// EXPUNGE, or UID EXPUNGE with a set.
    Expunge {
        uids: Option<SequenceSet>,
    },
    Search(SearchCommand),
    Fetch(FetchCommand),
    Store(StoreCommand),
    Copy {
        uid: bool,
        set: SequenceSet,
        mailbox: Vec<u8>,
    },
    Move {
        uid: bool,
        set: SequenceSet,
        mailbox: Vec<u8>,
    },
}

impl CommandBody {
    pub fn name(&self) -> &'static str {
        match self {
            CommandBody::Capability => "CAPABILITY",
            CommandBody::Noop => "NOOP",
            CommandBody::Logout => "LOGOUT",
            CommandBody::Id(_) => "ID",
            CommandBody::StartTls => "STARTTLS",
            CommandBody::Login { .. } => "LOGIN",
            CommandBody::Authenticate { .. } => "AUTHENTICATE",
            CommandBody::Enable(_) => "ENABLE",
            CommandBody::Select { read_only: false, .. } => "SELECT",
            CommandBody::Select { read_only: true, .. } => "EXAMINE",
            CommandBody::Create { .. } => "CREATE",
            CommandBody::Delete { .. } => "DELETE",
            CommandBody::Rename { .. } => "RENAME",
            CommandBody::Subscribe { .. } => "SUBSCRIBE",
            CommandBody::Unsubscribe { .. } => "UNSUBSCRIBE",
            CommandBody::List(_) => "LIST",
            CommandBody::Lsub { .. } => "LSUB",
            CommandBody::Namespace => "NAMESPACE",
            CommandBody::Status { .. } => "STATUS",
            CommandBody::Append { .. } => "APPEND",
            CommandBody::Idle => "IDLE",
            CommandBody::GetQuota { .. } => "GETQUOTA",
            CommandBody::GetQuotaRoot { .. } => "GETQUOTAROOT",
            CommandBody::SetQuota { .. } => "SETQUOTA",
            CommandBody::Check => "CHECK",
            CommandBody::Close => "CLOSE",
            CommandBody::Unselect => "UNSELECT",
            CommandBody::Expunge { .. } => "EXPUNGE",
            CommandBody::Search(_) => "SEARCH",
            CommandBody::Fetch(_) => "FETCH",
            CommandBody::Store(_) => "STORE",
            CommandBody::Copy { .. } => "COPY",
            CommandBody::Move { .. } => "MOVE",
        }
    }
}

/// SELECT/EXAMINE parameters (RFC 7162).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelectParams {
    pub condstore: bool,
    pub qresync: Option<Qresync>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qresync {
    pub uidvalidity: u32,
    pub modseq: u64,
    pub known_uids: Option<SequenceSet>,
    /// Message sequence numbers and the UIDs the client believes they have.
    pub seq_match: Option<(SequenceSet, SequenceSet)>,
}

/// LIST with RFC 5258 selection and return options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListCommand {
    pub reference: Vec<u8>,
    pub patterns: Vec<Vec<u8>>,
    pub subscribed: bool,
    pub recursive_match: bool,
    pub special_use_only: bool,
    pub return_subscribed: bool,
    pub return_children: bool,
    pub return_special_use: bool,
    /// LIST-STATUS (RFC 5819).
    pub return_status: Vec<StatusItem>,
    /// Any RFC 5258 syntax was used (answers then follow LIST-EXTENDED rules).
    pub extended: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusItem {
    Messages,
    Recent,
    UidNext,
    UidValidity,
    Unseen,
    Deleted,
    Size,
    HighestModSeq,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Flag {
    Seen,
    Answered,
    Flagged,
    Deleted,
    Draft,
    /// \Recent can be asked for in SEARCH but never set.
    Recent,
    Keyword(String),
    /// Any other \Flag: refused when storing.
    Extension(String),
}

/// `*` is the largest number in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqNum {
    Value(u32),
    Star,
}

/// A sequence set, or `$`: the result saved by the last SEARCH RETURN (SAVE) (RFC 5182).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SequenceSet {
    Ranges(Ranges),
    Saved,
}

impl SequenceSet {
    /// The set of these ranges (in any order, overlapping or not, high:low or low:high).
    pub fn of(ranges: &[(SeqNum, SeqNum)]) -> SequenceSet {
        SequenceSet::Ranges(Ranges::new(ranges.iter().copied()))
    }

    /// Disjoint ranges, ascending, with `*` resolved to `largest` (none for `$`, which the
    /// session resolves itself): at most one more than the set has ranges of plain numbers.
    pub fn ranges(&self, largest: u32) -> impl Iterator<Item = (u32, u32)> + '_ {
        match self {
            SequenceSet::Ranges(r) => r.resolved(largest),
            SequenceSet::Saved => Vec::new(),
        }
        .into_iter()
    }

    /// Whether `n` is in the set, `largest` standing in for `*`: a binary search.
    pub fn contains(&self, n: u32, largest: u32) -> bool {
        match self {
            SequenceSet::Ranges(r) => r.contains(n, largest),
            SequenceSet::Saved => false,
        }
    }
}

/// The ranges of a sequence set, sorted and merged once, when the command is parsed: the order
/// and repetition of ranges carry no meaning (RFC 9051 §9, `sequence-set`), so a set naming
/// `1:*` fifteen thousand times costs what `1:*` costs, and a number is looked up by binary
/// search, never range by range.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ranges {
    /// Ranges of plain numbers: ascending, disjoint and not adjacent.
    fixed: Vec<(u32, u32)>,
    /// The ranges that name `*`, together. `n:*` is `n` up to the largest number in use, or,
    /// when `n` is larger, the largest up to `n` (RFC 9051 §9: "559:*" names the last UID even
    /// when 559 is higher); every such range holds the largest number, so together they are one
    /// range, from the lower of the lowest `n` and the largest up to the higher of the highest
    /// `n` and the largest. Kept as (lowest `n`, highest `n`); `*` alone is `*:*`, which adds
    /// nothing but the largest: `(u32::MAX, 0)`.
    star: Option<(u32, u32)>,
}

impl Ranges {
    pub fn new(ranges: impl IntoIterator<Item = (SeqNum, SeqNum)>) -> Ranges {
        let mut fixed = Vec::new();
        let mut star: Option<(u32, u32)> = None;
        for pair in ranges {
            let n = match pair {
                (SeqNum::Value(a), SeqNum::Value(b)) => {
                    fixed.push((a.min(b), a.max(b)));
                    continue;
                }
                (SeqNum::Value(n), SeqNum::Star) | (SeqNum::Star, SeqNum::Value(n)) => Some(n),
                (SeqNum::Star, SeqNum::Star) => None,
            };
            let (lo, hi) = star.get_or_insert((u32::MAX, 0));
            if let Some(n) = n {
                *lo = (*lo).min(n);
                *hi = (*hi).max(n);
            }
        }
        fixed.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(fixed.len());
        for (lo, hi) in fixed {
            match merged.last_mut() {
                Some((_, last)) if lo <= last.saturating_add(1) => *last = (*last).max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        Ranges { fixed: merged, star }
    }

    /// The range `*` stands for, given the largest number in use.
    fn star_range(&self, largest: u32) -> Option<(u32, u32)> {
        self.star.map(|(lo, hi)| (lo.min(largest), hi.max(largest)))
    }

    fn resolved(&self, largest: u32) -> Vec<(u32, u32)> {
        let Some(star) = self.star_range(largest) else { return self.fixed.clone() };
        // The star range merged in where it belongs.
        let mut out = Vec::with_capacity(self.fixed.len() + 1);
        let mut star = Some(star);
        for &(lo, hi) in &self.fixed {
            match star {
                Some((s_lo, s_hi)) if s_hi.saturating_add(1) < lo => {
                    out.push((s_lo, s_hi));
                    star = None;
                    out.push((lo, hi));
                }
                Some((s_lo, s_hi)) if s_lo <= hi.saturating_add(1) => star = Some((s_lo.min(lo), s_hi.max(hi))),
                _ => out.push((lo, hi)),
            }
        }
        out.extend(star);
        out
    }

    fn contains(&self, n: u32, largest: u32) -> bool {
        if self.star_range(largest).is_some_and(|(lo, hi)| lo <= n && n <= hi) {
            return true;
        }
        let after = self.fixed.partition_point(|&(lo, _)| lo <= n);
        after > 0 && self.fixed[after - 1].1 >= n
    }
}

impl SeqNum {
    pub fn resolve(self, largest: u32) -> u32 {
        match self {
            SeqNum::Value(n) => n,
            SeqNum::Star => largest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute(pairs: &[(SeqNum, SeqNum)], n: u32, largest: u32) -> bool {
        pairs.iter().any(|&(a, b)| {
            let (a, b) = (a.resolve(largest), b.resolve(largest));
            a.min(b) <= n && n <= a.max(b)
        })
    }

    /// Normalized sets name exactly what their ranges name, one by one, for every largest
    /// number, and come out disjoint and ascending.
    #[test]
    fn normalized_sets_name_what_their_ranges_name() {
        use SeqNum::{Star, Value};
        let cases: Vec<Vec<(SeqNum, SeqNum)>> = vec![
            vec![(Value(1), Star)],
            vec![(Star, Star)],
            vec![(Value(7), Star), (Value(2), Star), (Star, Star)],
            vec![(Value(3), Value(5)), (Value(1), Value(1)), (Value(9), Value(6)), (Value(11), Star)],
            vec![(Value(2), Value(3)), (Value(4), Value(4)), (Value(20), Value(30)), (Star, Value(12))],
            vec![(Value(u32::MAX), Value(u32::MAX - 1)), (Value(1), Value(1))],
            vec![(Value(5), Value(5)); 1000],
        ];
        for pairs in &cases {
            let set = SequenceSet::of(pairs);
            for largest in [0, 1, 4, 5, 8, 12, 15, 25, 40, u32::MAX] {
                let ranges: Vec<(u32, u32)> = set.ranges(largest).collect();
                assert!(ranges.windows(2).all(|w| w[0].1.saturating_add(1) < w[1].0), "{pairs:?}: {ranges:?}");
                for n in (0..45).chain([u32::MAX - 2, u32::MAX - 1, u32::MAX]) {
                    let expected = brute(pairs, n, largest);
                    assert_eq!(set.contains(n, largest), expected, "{pairs:?} {n} of {largest}");
                    let listed = ranges.iter().any(|&(lo, hi)| lo <= n && n <= hi);
                    assert_eq!(listed, expected, "{pairs:?} {n} of {largest}: {ranges:?}");
                }
            }
        }
        // Fifteen thousand times `1:*` is one range.
        let set = SequenceSet::of(&vec![(Value(1), Star); 15_000]);
        assert_eq!(set.ranges(100).collect::<Vec<_>>(), vec![(1, 100)]);
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchCommand {
    pub uid: bool,
    /// ESEARCH return options (RFC 4731 / RFC 9051); `None` is a plain SEARCH.
    pub returns: Option<Vec<SearchReturn>>,
    pub charset: Option<String>,
    pub criteria: SearchKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchReturn {
    Min,
    Max,
    All,
    Count,
    Save,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchKey {
    All,
    And(Vec<SearchKey>),
    Or(Box<SearchKey>, Box<SearchKey>),
    Not(Box<SearchKey>),
    SequenceSet(SequenceSet),
    Uid(SequenceSet),
    /// A system flag or keyword that must be set (or, with `Not`, clear).
    Flag(Flag),
    /// NEW = RECENT UNSEEN; OLD = NOT RECENT (rev1).
    New,
    Old,
    Header(String, String),
    Bcc(String),
    Cc(String),
    From(String),
    To(String),
    Subject(String),
    Body(String),
    Text(String),
    /// Internal date, compared by day (Unix day number, UTC).
    Before(i64),
    On(i64),
    Since(i64),
    /// Date: header, by day.
    SentBefore(i64),
    SentOn(i64),
    SentSince(i64),
    Larger(u64),
    Smaller(u64),
    /// RFC 7162.
    ModSeq(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchCommand {
    pub uid: bool,
    pub set: SequenceSet,
    pub items: Vec<FetchItem>,
    pub changed_since: Option<u64>,
    pub vanished: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchItem {
    Flags,
    InternalDate,
    Rfc822Size,
    Envelope,
    /// BODY without a section: the non-extensible structure.
    Body,
    BodyStructure,
    Uid,
    ModSeq,
    /// `BODY[section]<partial>`, `BODY.PEEK[...]`, and `RFC822` / `RFC822.HEADER` / `RFC822.TEXT`.
    BodySection {
        peek: bool,
        section: Section,
        partial: Option<(u64, u64)>,
        legacy: Option<&'static str>,
    },
    Binary {
        peek: bool,
        part: Vec<u32>,
        partial: Option<(u64, u64)>,
    },
    BinarySize {
        part: Vec<u32>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreCommand {
    pub uid: bool,
    pub set: SequenceSet,
    pub unchanged_since: Option<u64>,
    pub op: StoreOp,
    pub silent: bool,
    pub flags: Vec<Flag>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    Add,
    Remove,
    Replace,
}
