//! What `portcullis store migrate` moves between backends: every table that holds state, in an
//! order where a row's references are copied before it, each with its columns and their kinds,
//! and the chunks a backend's export sends and another backend's import receives. Both backends
//! keep the same tables with the same meaning (PostgreSQL's schema mirrors SQLite's), so one
//! list here, rather than a mapping per pair of backends, says what a copy is.
//!
//! Left out on purpose: PostgreSQL's `session_slots`, `maildrop_locks`, `nodes` and
//! `signal_bodies` (who holds a session on which node right now, which nodes are alive, what
//! they are telling each other: meaningless in another database) and each backend's own record
//! of its schema version. `meta` comes last and is merged rather than copied (see [`META`]).

/// How a column's values travel: SQLite keeps booleans as 0/1 integers, PostgreSQL as
/// BOOLEAN, so a kind says what each side must turn the value into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Text,
    Bytes,
    Bool,
}

/// One value of one column; `Null` for SQL NULL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
    Bool(bool),
}

impl Value {
    /// Roughly what the value takes in memory, for cutting batches by size.
    pub fn weight(&self) -> usize {
        match self {
            Value::Text(t) => t.len() + 16,
            Value::Bytes(b) => b.len() + 16,
            _ => 16,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }
}

pub type Row = Vec<Value>;

/// One table as a copy sees it.
#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    /// Every column copied, in the order rows carry their values.
    pub columns: &'static [(&'static str, Kind)],
    /// The columns rows are read in the order of (the primary key).
    pub order_by: &'static str,
    /// Whether `id` comes from a sequence (PostgreSQL's identity, SQLite's `last_id.*`), which
    /// the destination must set past the copied ids.
    pub identity: bool,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|(c, _)| *c == name)
    }
}

use Kind::{Bool as L, Bytes as B, Int as I, Text as T};

/// Every table copied, referenced tables before the tables that refer to them.
pub const TABLES: &[Table] = &[
    Table { name: "domains", columns: &[("id", I), ("name", T), ("created", I)], order_by: "id", identity: true },
    Table {
        name: "accounts",
        columns: &[
            ("id", I),
            ("domain_id", I),
            ("localpart", T),
            ("password_hash", T),
            ("quota", I),
            ("used_bytes", I),
            ("created", I),
            ("scram_salt", B),
            ("scram_iterations", I),
            ("scram_stored_key", B),
            ("scram_server_key", B),
            ("totp_secret", B),
            ("totp_enabled", L),
            ("totp_last_step", I),
            ("totp_failures", I),
            ("totp_locked", L),
            ("credentials_generation", I),
        ],
        order_by: "id",
        identity: true,
    },
    Table {
        name: "mailboxes",
        columns: &[
            ("id", I),
            ("account_id", I),
            ("name", T),
            ("special_use", T),
            ("uidvalidity", I),
            ("uidnext", I),
            ("highestmodseq", I),
            ("recent_from", I),
        ],
        order_by: "id",
        identity: true,
    },
    Table { name: "blobs", columns: &[("id", I), ("data", B)], order_by: "id", identity: true },
    Table {
        name: "summaries",
        columns: &[
            ("blob_id", I),
            ("header_len", I),
            ("envelope", B),
            ("bodystructure", B),
            ("body", B),
            ("sent_date", I),
        ],
        order_by: "blob_id",
        identity: false,
    },
    Table { name: "header_caches", columns: &[("blob_id", I), ("data", B)], order_by: "blob_id", identity: false },
    Table {
        name: "messages",
        columns: &[
            ("id", I),
            ("mailbox_id", I),
            ("uid", I),
            ("blob_id", I),
            ("size", I),
            ("internal_date", I),
            ("flags", I),
            ("keywords", T),
            ("modseq", I),
        ],
        order_by: "id",
        identity: true,
    },
    Table {
        name: "expunged",
        columns: &[("mailbox_id", I), ("modseq", I), ("uid", I)],
        order_by: "mailbox_id, modseq, uid",
        identity: false,
    },
    Table {
        name: "subscriptions",
        columns: &[("account_id", I), ("name", T)],
        order_by: "account_id, name",
        identity: false,
    },
    Table {
        name: "mailbox_keywords",
        columns: &[("mailbox_id", I), ("keyword", T)],
        order_by: "mailbox_id, keyword",
        identity: false,
    },
    Table {
        name: "bans",
        columns: &[
            ("network", T),
            ("until", I),
            ("reason", T),
            ("offence", I),
            ("manual", L),
            ("created", I),
            ("seq", I),
        ],
        order_by: "network",
        identity: false,
    },
    Table {
        name: "lifted_bans",
        columns: &[("network", T), ("seq", I), ("lifted", I)],
        order_by: "network",
        identity: false,
    },
    Table {
        name: "known_logins",
        columns: &[("account_id", I), ("source", T), ("last_success", I)],
        order_by: "account_id, source",
        identity: false,
    },
    Table {
        name: "app_passwords",
        columns: &[
            ("id", I),
            ("account_id", I),
            ("name", T),
            ("digest", B),
            ("scopes", I),
            ("created", I),
            ("expires", I),
            ("last_used", I),
            ("last_ip", T),
            ("revoked", L),
        ],
        order_by: "id",
        identity: true,
    },
    Table {
        name: "recovery_codes",
        columns: &[("account_id", I), ("digest", B)],
        order_by: "account_id, digest",
        identity: false,
    },
    Table { name: "secrets", columns: &[("name", T), ("value", B)], order_by: "name", identity: false },
    Table {
        name: "queue",
        columns: &[
            ("id", I),
            ("sender", T),
            ("ret", T),
            ("envid", T),
            ("smtputf8", L),
            ("eight_bit", L),
            ("content", B),
            ("queued_at", I),
            ("next_attempt", I),
            ("attempts", I),
            ("delay_notice_sent", L),
            ("requiretls", L),
            ("held", L),
            ("lease_node", T),
            ("lease_run", T),
        ],
        order_by: "id",
        identity: true,
    },
    Table {
        name: "queue_recipients",
        columns: &[
            ("queue_id", I),
            ("position", I),
            ("address", T),
            ("notify", T),
            ("orcpt", T),
            ("state", T),
            ("last_reply", T),
        ],
        order_by: "queue_id, position",
        identity: false,
    },
    Table {
        name: "dkim_keys",
        columns: &[
            ("domain_id", I),
            ("selector", T),
            ("algorithm", T),
            ("private_pkcs8", B),
            ("created", I),
            ("active_from", I),
            ("retire_at", I),
        ],
        order_by: "domain_id, selector",
        identity: false,
    },
    Table {
        name: "aliases",
        columns: &[("domain_id", I), ("localpart", T), ("account_id", I), ("created", I)],
        order_by: "domain_id, localpart",
        identity: false,
    },
    META,
];

/// Counters and generations (`uidvalidity`, `ban_seq`, `dkim_keys_generation`, and SQLite's
/// `last_id.TABLE`, the largest id ever handed out in TABLE). Last, and merged: a destination
/// keeps the larger of its own value and the copied one, and turns `last_id.TABLE` into its
/// own way of never handing out an id twice (a PostgreSQL source makes these rows from its
/// sequences, a PostgreSQL destination sets its sequences from them).
pub const META: Table = Table { name: "meta", columns: &[("key", T), ("value", I)], order_by: "key", identity: false };

/// The `meta` key that carries a table's largest id ever handed out.
pub fn last_id_key(table: &str) -> String {
    format!("last_id.{table}")
}

/// What an export sends, in this order: `Counts` once (rows per table of [`TABLES`], in the
/// snapshot being read), `Rows` of each table in [`TABLES`] order, then `End`. An import
/// commits only after `End`: a stream that stops before it (the source failed) leaves the
/// destination as it was.
#[derive(Debug)]
pub enum Chunk {
    Counts(Vec<u64>),
    Rows { table: usize, rows: Vec<Row> },
    End,
}

/// Rows per batch at most, and bytes per batch at most (bodies are read a few at a time,
/// never a whole table in memory).
pub const BATCH_ROWS: usize = 500;
pub const BATCH_BYTES: usize = 8 << 20;

/// Collects rows into batches of at most [`BATCH_ROWS`] rows or about [`BATCH_BYTES`] bytes.
#[derive(Default)]
pub struct Batcher {
    rows: Vec<Row>,
    bytes: usize,
}

impl Batcher {
    /// Adds `row`; a full batch comes back to be sent.
    pub fn push(&mut self, row: Row) -> Option<Vec<Row>> {
        self.bytes += row.iter().map(Value::weight).sum::<usize>();
        self.rows.push(row);
        (self.rows.len() >= BATCH_ROWS || self.bytes >= BATCH_BYTES).then(|| self.take())
    }

    /// What is left (empty when nothing is).
    pub fn take(&mut self) -> Vec<Row> {
        self.bytes = 0;
        std::mem::take(&mut self.rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_is_listed_once_and_ordered_by_its_own_columns() {
        let mut names: Vec<_> = TABLES.iter().map(|t| t.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TABLES.len());
        for table in TABLES {
            for key in table.order_by.split(", ") {
                assert!(table.column(key).is_some(), "{}: {key}", table.name);
            }
            assert_eq!(table.identity, table.column("id") == Some(0), "{}", table.name);
        }
        assert_eq!(TABLES.last().map(|t| t.name), Some("meta"));
    }

    #[test]
    fn references_come_before_the_rows_that_use_them() {
        let position = |name: &str| TABLES.iter().position(|t| t.name == name).unwrap();
        for (child, parent) in [
            ("accounts", "domains"),
            ("mailboxes", "accounts"),
            ("messages", "mailboxes"),
            ("messages", "blobs"),
            ("summaries", "blobs"),
            ("queue_recipients", "queue"),
            ("aliases", "accounts"),
            ("dkim_keys", "domains"),
            ("app_passwords", "accounts"),
        ] {
            assert!(position(parent) < position(child), "{parent} before {child}");
        }
    }

    #[test]
    fn batches_are_cut_by_rows_and_by_bytes() {
        let mut batcher = Batcher::default();
        let full = (0..BATCH_ROWS).filter_map(|n| batcher.push(vec![Value::Int(n as i64)])).count();
        assert_eq!((full, batcher.take().len()), (1, 0));
        assert!(batcher.push(vec![Value::Bytes(vec![0; BATCH_BYTES])]).is_some());
        assert!(batcher.push(vec![Value::Int(1)]).is_none());
        assert_eq!(batcher.take().len(), 1);
    }
}
