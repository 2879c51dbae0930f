//! What `portcullis store check` reports, whatever the backend: counts of what was examined and
//! one sentence per problem. Each backend fills it with its own SQL (SQLite's `check.rs`,
//! PostgreSQL's `check.rs`), so the CLI prints one report and `store migrate` compares the two
//! ends of a copy by the same numbers.

/// What a backend's `check` examined and what it found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    pub domains: u64,
    pub accounts: u64,
    pub mailboxes: u64,
    pub messages: u64,
    /// Message bodies (several messages share one when a delivery had several recipients, or
    /// after COPY).
    pub bodies: u64,
    /// Bytes of those bodies.
    pub body_bytes: u64,
    /// Bodies that SEARCH reads the header of, having no header cache it can use (none, or
    /// one of another format version): tolerated, only slower to search.
    pub bodies_without_header_cache: u64,
    /// One sentence per problem, each naming the account, mailbox and UID it is about.
    pub problems: Vec<String>,
}

impl CheckReport {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The counts as (what, how many), in a fixed order: for comparing two stores that should
    /// hold the same (the two ends of `store migrate`).
    pub fn counts(&self) -> [(&'static str, u64); 7] {
        [
            ("domains", self.domains),
            ("accounts", self.accounts),
            ("mailboxes", self.mailboxes),
            ("messages", self.messages),
            ("bodies", self.bodies),
            ("body bytes", self.body_bytes),
            ("bodies without a header cache", self.bodies_without_header_cache),
        ]
    }
}

/// Problems of one kind listed at most; the rest are counted (every backend's check).
pub const CHECK_LIST_AT_MOST: usize = 20;
