//! `portcullis store migrate --from URL --to URL`: copies one store into another, empty one,
//! whatever their backends (SQLite to PostgreSQL is the move to several nodes; PostgreSQL to
//! SQLite the way back). The source exports every table of `portcullis_store::transfer` from
//! one snapshot, so a running server may keep writing (what it writes after the snapshot is not
//! copied); the destination imports them in one transaction, which it commits only once the
//! whole snapshot arrived. Batches flow through small channels: never the whole database in
//! memory. Queued outbound messages arrive with their leases cleared (a lease names a runner
//! of the old installation). At the end both ends are checked (`store check`) and their
//! counts compared, table by table and as the checks count them.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use portcullis_store::transfer::{Chunk, Row, Value, META, TABLES};
use portcullis_store::{CheckReport, CoordinationStore, StoreError};
use portcullis_store_postgres::PgStore;
use portcullis_store_sqlite::SqliteStore;

/// One end of a copy, opened from its URL.
// Two of these exist at a time, in one command: a box would save nothing worth its noise.
#[allow(clippy::large_enum_variant)]
pub enum Endpoint {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// Where a copy stands: `done` of `total` rows of `table` sent to the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub table: &'static str,
    pub done: u64,
    pub total: u64,
}

/// One table of a finished copy: rows in the snapshot, rows written, rows the destination holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCopy {
    pub table: &'static str,
    pub snapshot: u64,
    pub written: u64,
    pub destination: u64,
}

/// What a finished copy did and what both ends look like after it.
#[derive(Debug, Clone)]
pub struct MigrateReport {
    pub tables: Vec<TableCopy>,
    pub source: CheckReport,
    pub destination: CheckReport,
}

impl MigrateReport {
    /// Every way the two ends disagree, one sentence each; empty when the copy is faithful.
    /// `meta` is merged, not copied (see `transfer::META`), so it is not compared.
    pub fn differences(&self) -> Vec<String> {
        let mut found = Vec::new();
        for t in self.tables.iter().filter(|t| t.table != META.name) {
            if t.snapshot != t.written || t.written != t.destination {
                found.push(format!(
                    "{}: {} rows in the source's snapshot, {} copied, {} in the destination",
                    t.table, t.snapshot, t.written, t.destination
                ));
            }
        }
        for ((what, source), (_, destination)) in self.source.counts().iter().zip(self.destination.counts()) {
            if *source != destination {
                found.push(format!(
                    "{what}: the source now has {source}, the destination {destination} \
                     (the source changed after the snapshot: stop the server and migrate again into an empty database)"
                ));
            }
        }
        found.extend(self.source.problems.iter().map(|p| format!("source: {p}")));
        found.extend(self.destination.problems.iter().map(|p| format!("destination: {p}")));
        found
    }
}

impl Endpoint {
    /// Opens the store `url` names: `sqlite:PATH` (relative to the working directory) or
    /// `postgres://…`/`postgresql://…`. A source must exist already (`create` false): a
    /// mistyped SQLite path is an error, not a new empty database. Either end's schema is
    /// brought up to this build's.
    pub async fn open(url: &str, create: bool) -> Result<Endpoint, StoreError> {
        if let Some(path) = url.strip_prefix("sqlite:") {
            let path = PathBuf::from(path.trim_start_matches("//"));
            if path.as_os_str().is_empty() {
                return Err(StoreError::Backend(
                    "\"sqlite:\" needs a path, e.g. sqlite:/var/lib/portcullis/mail.db".into(),
                ));
            }
            if !create && !path.exists() {
                return Err(StoreError::Backend(format!("{} does not exist", path.display())));
            }
            return Ok(Endpoint::Sqlite(SqliteStore::open(&path, None)?));
        }
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        if matches!(scheme.as_deref(), Some("postgres" | "postgresql")) {
            return Ok(Endpoint::Postgres(PgStore::connect(url, None).await?));
        }
        Err(StoreError::Backend(format!(
            "\"{}:…\" is not a store URL; use sqlite:PATH or postgres://USER@HOST/DATABASE",
            url.split(':').next().unwrap_or_default()
        )))
    }

    /// The store `store.url` names (with `store.password_file`'s password), as [`Self::open`].
    pub async fn open_configured(config: &portcullis_config::Store) -> Result<Endpoint, StoreError> {
        match &config.backend {
            portcullis_config::Backend::Sqlite(path) => {
                if !path.exists() {
                    return Err(StoreError::Backend(format!("{} does not exist", path.display())));
                }
                Ok(Endpoint::Sqlite(SqliteStore::open(path, config.default_quota)?))
            }
            portcullis_config::Backend::Postgres(pg) => {
                Ok(Endpoint::Postgres(PgStore::connect(&crate::connection_url(pg)?, config.default_quota).await?))
            }
        }
    }

    fn export(&self) -> mpsc::Receiver<Result<Chunk, StoreError>> {
        match self {
            Endpoint::Sqlite(s) => s.export(),
            Endpoint::Postgres(s) => s.export(),
        }
    }

    async fn import(&self, chunks: mpsc::Receiver<Chunk>) -> Result<Vec<u64>, StoreError> {
        match self {
            Endpoint::Sqlite(s) => s.import(chunks).await,
            Endpoint::Postgres(s) => s.import(chunks).await,
        }
    }

    async fn first_nonempty_table(&self) -> Result<Option<(&'static str, u64)>, StoreError> {
        match self {
            Endpoint::Sqlite(s) => s.first_nonempty_table().await,
            Endpoint::Postgres(s) => s.first_nonempty_table().await,
        }
    }

    async fn table_counts(&self) -> Result<Vec<u64>, StoreError> {
        match self {
            Endpoint::Sqlite(s) => s.table_counts().await,
            Endpoint::Postgres(s) => s.table_counts().await,
        }
    }

    /// `store check` on this end.
    pub async fn check(&self, quick: bool) -> Result<CheckReport, StoreError> {
        match self {
            Endpoint::Sqlite(s) => s.check(quick).await,
            Endpoint::Postgres(s) => s.check(quick).await,
        }
    }

    /// Closes the store's connections (and, for PostgreSQL, its LISTEN connection).
    pub fn close(&self) {
        match self {
            Endpoint::Sqlite(s) => CoordinationStore::close(s),
            Endpoint::Postgres(s) => s.close(),
        }
    }
}

/// A URL for people: its password, if it has one, left out.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Ok(_) => url.to_string(),
        // A SQLite URL holds no password; anything else unreadable is not shown at all.
        Err(_) if url.starts_with("sqlite:") => url.to_string(),
        Err(_) => "the database".into(),
    }
}

/// Why the copy stopped on the source's side of the channel.
enum PumpError {
    Source(StoreError),
    /// The destination stopped taking rows; its own error says why.
    DestinationGone,
}

/// Copies everything `from` holds into `to`, which must be empty, calling `progress` as
/// batches go through (and once per table when it is done, empty tables included), then checks
/// both ends. `Err` when nothing was copied (the destination is not empty, either end failed);
/// a finished copy's [`MigrateReport::differences`] says whether the two ends agree.
pub async fn migrate(
    from: &Endpoint,
    to: &Endpoint,
    quick: bool,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<MigrateReport, StoreError> {
    if let Some((table, rows)) = to.first_nonempty_table().await? {
        return Err(StoreError::Backend(format!(
            "the destination is not empty ({table} has {rows} rows); migrate into a new, empty database"
        )));
    }
    let mut source = from.export();
    let (sink, chunks) = mpsc::channel(2);
    let import = to.import(chunks);
    let pump = async move {
        let mut totals = vec![0u64; TABLES.len()];
        let mut done = vec![0u64; TABLES.len()];
        // Tables before this one have been reported finished.
        let mut next_unfinished = 0usize;
        let mut finish_up_to =
            |end: usize, done: &[u64], totals: &[u64], progress: &mut (dyn FnMut(Progress) + Send)| {
                while next_unfinished < end {
                    let i = next_unfinished;
                    progress(Progress { table: TABLES[i].name, done: done[i], total: totals[i] });
                    next_unfinished += 1;
                }
            };
        while let Some(item) = source.recv().await {
            let mut chunk = item.map_err(PumpError::Source)?;
            let end = match &mut chunk {
                Chunk::Counts(counts) => {
                    totals.clone_from(counts);
                    false
                }
                Chunk::Rows { table, rows } => {
                    let table = *table;
                    finish_up_to(table, &done, &totals, progress);
                    if TABLES.get(table).is_some_and(|t| t.name == "queue") {
                        rows.iter_mut().for_each(clear_lease);
                    }
                    done[table] += rows.len() as u64;
                    if done[table] < totals[table] {
                        progress(Progress { table: TABLES[table].name, done: done[table], total: totals[table] });
                    }
                    false
                }
                Chunk::End => true,
            };
            sink.send(chunk).await.map_err(|_| PumpError::DestinationGone)?;
            if end {
                finish_up_to(TABLES.len(), &done, &totals, progress);
                return Ok(totals);
            }
        }
        Err(PumpError::Source(StoreError::Backend("the source stopped before the end of its snapshot".into())))
    };
    let (pumped, imported) = tokio::join!(pump, import);
    let (totals, written) = match (pumped, imported) {
        (Ok(totals), Ok(written)) => (totals, written),
        (Err(PumpError::Source(e)), _) => return Err(StoreError::Backend(format!("reading the source failed: {e}"))),
        (_, Err(e)) => return Err(StoreError::Backend(format!("writing the destination failed: {e}"))),
        (Err(PumpError::DestinationGone), Ok(_)) => {
            return Err(StoreError::Backend("the destination stopped taking rows".into()))
        }
    };
    let destination = to.table_counts().await?;
    let tables = TABLES
        .iter()
        .enumerate()
        .map(|(i, t)| TableCopy {
            table: t.name,
            snapshot: totals[i],
            written: written[i],
            destination: destination[i],
        })
        .collect();
    Ok(MigrateReport { tables, source: from.check(quick).await?, destination: to.check(quick).await? })
}

/// A queued message's lease cleared: the runner that held it belongs to the old installation.
/// Its next attempt is due at once if the lease was still running (as a restarted runner
/// taking its leases back would do).
fn clear_lease(row: &mut Row) {
    let Some(queue) = TABLES.iter().find(|t| t.name == "queue") else { return };
    let (Some(node), Some(run), Some(next)) =
        (queue.column("lease_node"), queue.column("lease_run"), queue.column("next_attempt"))
    else {
        return;
    };
    if row.get(node).is_some_and(|v| *v != Value::Null) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        if let Some(Value::Int(at)) = row.get_mut(next) {
            *at = (*at).min(now);
        }
        row[node] = Value::Null;
        row[run] = Value::Null;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_password() {
        assert_eq!(redact("postgres://mail:s3cret@db.example.org/mail"), "postgres://mail@db.example.org/mail");
        assert_eq!(redact("postgres://mail@db.example.org/mail"), "postgres://mail@db.example.org/mail");
        assert_eq!(redact("sqlite:/var/lib/portcullis/mail.db"), "sqlite:/var/lib/portcullis/mail.db");
        assert_eq!(redact("postgres://mail:pw@[bad"), "the database");
    }

    #[test]
    fn a_lease_is_cleared_and_its_message_made_due() {
        let queue = TABLES.iter().find(|t| t.name == "queue").unwrap();
        let at = |name: &str| queue.column(name).unwrap();
        let mut row: Row = vec![Value::Null; queue.columns.len()];
        row[at("next_attempt")] = Value::Int(i64::MAX);
        row[at("lease_node")] = Value::Text("old".into());
        row[at("lease_run")] = Value::Text("run".into());
        clear_lease(&mut row);
        assert_eq!((&row[at("lease_node")], &row[at("lease_run")]), (&Value::Null, &Value::Null));
        assert!(row[at("next_attempt")].as_int().unwrap() < i64::MAX);
        // Not leased: left as it was.
        row[at("next_attempt")] = Value::Int(i64::MAX);
        clear_lease(&mut row);
        assert_eq!(row[at("next_attempt")], Value::Int(i64::MAX));
    }
}
