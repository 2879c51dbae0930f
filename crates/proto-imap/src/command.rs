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
    Ranges(Vec<(SeqNum, SeqNum)>),
    Saved,
}

impl SequenceSet {
    /// The ranges with `*` resolved, each ordered low..=high (none for `$`, which the session
    /// resolves itself).
    pub fn ranges(&self, largest: u32) -> impl Iterator<Item = (u32, u32)> + '_ {
        let ranges: &[(SeqNum, SeqNum)] = match self {
            SequenceSet::Ranges(r) => r,
            SequenceSet::Saved => &[],
        };
        ranges.iter().map(move |&(a, b)| {
            let (a, b) = (a.resolve(largest), b.resolve(largest));
            if a <= b {
                (a, b)
            } else {
                (b, a)
            }
        })
    }

    /// Whether `n` is in the set, `largest` standing in for `*`.
    pub fn contains(&self, n: u32, largest: u32) -> bool {
        self.ranges(largest).any(|(lo, hi)| lo <= n && n <= hi)
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
