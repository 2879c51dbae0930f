//! The embedded store: one SQLite file in WAL mode with `synchronous = FULL`, so a commit is
//! on disk when it returns.
//!
//! All writes go through one writer thread that commits whatever has queued up while the
//! previous commit was syncing in a single transaction (group commit), each job inside its own
//! SAVEPOINT so that one failed delivery does not undo another. A job's caller is answered only
//! after the transaction holding it has committed. Reads use a small pool of connections on
//! tokio's blocking threads, and see the last committed state (WAL snapshots).
//!
//! This crate implements the `portcullis-store` traits; nothing outside the store crates names
//! it (`portcullis-store-backends` opens it from `store.url`).

mod accounts;
mod aliases;
mod check;
mod dkim;
mod guard;
mod index_cache;
mod keywords;
mod mailboxes;
mod messages;
mod ops;
mod queue;
mod schema;
mod secrets;
mod transfer;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use portcullis_store::counts::MemoryCounts;
use portcullis_store::{MailboxChange, StoreError};
use portcullis_store::{Signals, Watchers};

pub use check::CheckReport;

/// How long a connection waits for another process (the admin CLI) holding the write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound on jobs committed together.
const MAX_BATCH: usize = 256;
/// Keys (accounts sending, sources failing, accounts failing) the guard's counts track each,
/// as many as the guard's own default `max_tracked`: a few megabytes at most.
const MAX_COUNTED_KEYS: usize = 100_000;
/// Idle read connections kept open.
const READ_POOL: usize = 8;

/// `rusqlite::Error` into the store's error at the point it leaves SQLite: `.db()?`.
///
/// An extension trait rather than `From<rusqlite::Error> for StoreError`, which the orphan rule
/// forbids here (both types are foreign) and which would tie the backend-free crate to rusqlite.
/// A local error type converting into `StoreError` would have touched every internal signature;
/// this touches only the `?` that cross from SQLite into the store's errors.
pub(crate) trait Db<T> {
    fn db(self) -> Result<T, StoreError>;
}

impl<T> Db<T> for rusqlite::Result<T> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(db_error)
    }
}

/// A SQLite failure as the store reports it.
pub(crate) fn db_error(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> Completion + Send>;

pub struct SqliteStore {
    path: PathBuf,
    default_quota: Option<u64>,
    /// Mailboxes (and subscriptions) one account may have; `None`: no limit.
    max_mailboxes: Option<usize>,
    writer: Mutex<Option<(mpsc::Sender<Job>, JoinHandle<()>)>>,
    checkpointer: Mutex<Option<Checkpointer>>,
    readers: Arc<Mutex<Vec<Connection>>>,
    maildrops: Arc<Mutex<HashSet<i64>>>,
    /// IMAP sessions per account (see `acquire_session`).
    sessions: Arc<Mutex<HashMap<i64, usize>>>,
    watchers: Arc<Watchers>,
    /// This handle's node id, and its signals: in-process only, since one process serves a
    /// SQLite store (the CLI writing the same file is followed by the server's poll).
    node: String,
    signals: Signals,
    /// The guard's sending and failed-login counts (`GuardStore::add_sent` and the rest): in
    /// memory, since this process is the only one that counts on a SQLite store, and a write
    /// per count would wait for the writer's sync (docs/architecture.md §6.5). A restart
    /// forgets them.
    counts: MemoryCounts,
    /// Message lists of recently selected mailboxes (SELECT's fast path).
    index: Arc<portcullis_store::index_cache::IndexCache>,
}

fn open_connection(path: &Path, create: bool) -> Result<Connection, StoreError> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(BUSY_TIMEOUT).db()?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA trusted_schema = OFF;",
    )
    .db()?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    /// `default_quota` applies to accounts without their own (`None`: unlimited).
    pub fn open(path: &Path, default_quota: Option<u64>) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", dir.display())))?;
        }
        let mut conn = open_connection(path, true)?;
        schema::migrate(&mut conn)?;
        // Checkpoints run on their own thread (see `Checkpointer`), never inside a commit.
        conn.pragma_update(None, "wal_autocheckpoint", 0).db()?;
        let checkpointer = Checkpointer::start(open_connection(path, false)?)?;

        let (tx, rx) = mpsc::channel::<Job>();
        let handle = std::thread::Builder::new()
            .name("portcullis-store-writer".into())
            .spawn(move || write_loop(conn, rx))
            .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            default_quota,
            max_mailboxes: None,
            writer: Mutex::new(Some((tx, handle))),
            checkpointer: Mutex::new(Some(checkpointer)),
            readers: Arc::new(Mutex::new(Vec::new())),
            maildrops: Arc::new(Mutex::new(HashSet::new())),
            sessions: Arc::new(Mutex::new(HashMap::new())),
            watchers: Arc::new(Watchers::default()),
            node: portcullis_store::new_node_id(),
            signals: Signals::default(),
            index: Arc::new(portcullis_store::index_cache::IndexCache::default()),
            counts: MemoryCounts::new(MAX_COUNTED_KEYS),
        })
    }

    /// At most `max` mailboxes per account, and as many subscriptions: CREATE and RENAME that
    /// would make more (parents included) fail with [`MailboxError::TooManyMailboxes`], a
    /// subscription more with [`MailboxError::TooManySubscriptions`]. Every LIST reads them
    /// all; without a bound one account could make each of its LISTs as slow as it likes.
    /// New accounts get their default mailboxes whatever the limit.
    ///
    /// [`MailboxError::TooManyMailboxes`]: portcullis_store::MailboxError::TooManyMailboxes
    /// [`MailboxError::TooManySubscriptions`]: portcullis_store::MailboxError::TooManySubscriptions
    pub fn with_max_mailboxes(mut self, max: usize) -> SqliteStore {
        self.max_mailboxes = Some(max);
        self
    }

    /// Creates (or brings) the database at `path` to schema `version` and no further: for
    /// testing migrations on a database as an older build left it.
    #[doc(hidden)]
    pub fn migrate_to(path: &Path, version: usize) -> Result<(), StoreError> {
        let mut conn = open_connection(path, true)?;
        schema::migrate_to(&mut conn, version)
    }

    /// Runs `f` inside the writer's next transaction; resolves once that transaction is
    /// durable (or with the error that stopped it).
    async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        self.write_announcing(move |conn| f(conn).map(|t| (t, Vec::new()))).await
    }

    /// Like [`Self::write`], for writes that change mailboxes: `f` also returns the changes,
    /// which are announced on the writer thread right after the commit, so that a watcher
    /// never sees a change it cannot yet read, and an announcement does not depend on the
    /// caller still waiting.
    async fn write_announcing<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<(T, Vec<MailboxChange>), E> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel::<Result<T, E>>();
        let watchers = self.watchers.clone();
        let job: Job = Box::new(move |conn| {
            let result = in_savepoint(conn, f);
            Box::new(move |committed: Result<(), StoreError>| {
                let result = match committed {
                    Ok(()) => result,
                    Err(e) => result.and(Err(E::from(e))),
                };
                let _ = reply.send(result.map(|(value, changes)| {
                    watchers.announce(&changes);
                    value
                }));
            })
        });
        let sent = match &*self.writer.lock().map_err(|_| StoreError::Backend("writer lock poisoned".into()))? {
            Some((tx, _)) => tx.send(job).is_ok(),
            None => false,
        };
        if !sent {
            return Err(StoreError::Backend("the store is closed".into()).into());
        }
        answer.await.unwrap_or_else(|_| Err(StoreError::Backend("the write transaction could not start".into()).into()))
    }

    /// Runs `f` on a pooled read connection on a blocking thread.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let readers = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = readers.lock().ok().and_then(|mut pool| pool.pop());
            let conn = match pooled {
                Some(conn) => conn,
                None => open_connection(&path, false)?,
            };
            let result = f(&conn);
            if let Ok(mut pool) = readers.lock() {
                if pool.len() < READ_POOL {
                    pool.push(conn);
                }
            }
            result
        })
        .await
        .map_err(|e| StoreError::Backend(format!("read task failed: {e}")))?
    }

    /// Stops the writer after it has committed everything queued, and folds the WAL back into
    /// the database file.
    pub(crate) fn stop_writer(&self) {
        if let Some(checkpointer) = self.checkpointer.lock().ok().and_then(|mut c| c.take()) {
            checkpointer.stop();
        }
        let writer = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some((tx, handle)) = writer {
            drop(tx);
            let _ = handle.join();
        }
        if let Ok(mut pool) = self.readers.lock() {
            pool.clear();
        }
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.stop_writer();
    }
}

/// How often the WAL is copied back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Copies the WAL back into the database file off the writer thread. Done inside a commit (as
/// SQLite does by default) it puts an fsync of the database file, 2 to 10 ms here, in front of
/// every delivery queued behind that commit: most of the submission p99 in docs/benchmarks.md.
/// PASSIVE never blocks the writer or readers.
struct Checkpointer {
    stop: Arc<(Mutex<bool>, std::sync::Condvar)>,
    handle: JoinHandle<()>,
}

impl Checkpointer {
    fn start(conn: Connection) -> Result<Checkpointer, StoreError> {
        let stop = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("portcullis-store-checkpoint".into())
            .spawn(move || {
                let (stopped, wake) = &*flag;
                let Ok(mut done) = stopped.lock() else { return };
                while !*done {
                    done = match wake.wait_timeout(done, CHECKPOINT_EVERY) {
                        Ok((guard, _)) => guard,
                        Err(_) => return,
                    };
                    let _ = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)");
                }
            })
            .map_err(|e| StoreError::Backend(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Checkpointer { stop, handle })
    }

    fn stop(self) {
        if let Ok(mut done) = self.stop.0.lock() {
            *done = true;
        }
        self.stop.1.notify_all();
        let _ = self.handle.join();
    }
}

fn in_savepoint<T, E: From<StoreError>>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, E>,
) -> Result<T, E> {
    conn.execute_batch("SAVEPOINT job").map_err(|e| E::from(db_error(e)))?;
    let result = f(conn);
    let end = if result.is_ok() { "RELEASE job" } else { "ROLLBACK TO job; RELEASE job" };
    match conn.execute_batch(end) {
        Ok(()) => result,
        Err(e) => Err(E::from(db_error(e))),
    }
}

fn write_loop(conn: Connection, jobs: mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if conn.execute_batch("BEGIN IMMEDIATE").is_err() {
            // Dropping the jobs answers their callers with an error.
            continue;
        }
        let completions: Vec<Completion> = batch.into_iter().map(|job| job(&conn)).collect();
        let committed = conn.execute_batch("COMMIT").map_err(db_error);
        if committed.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for done in completions {
            done(committed.as_ref().map(|_| ()).map_err(|e| StoreError::Backend(e.to_string())));
        }
    }
    let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
}
