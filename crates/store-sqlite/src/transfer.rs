//! `store migrate` on SQLite: the export reads every table of `portcullis_store::transfer` in
//! one read transaction (one WAL snapshot, so a running server may keep writing and the copy is
//! still of one moment), a batch at a time; the import writes a copy into an empty database in
//! one transaction, which commits only when the export said it is complete.
//!
//! Both run on a blocking thread with a connection of their own, beside the store's writer and
//! readers, and talk to the async side through bounded channels: at most a few batches are in
//! memory at once, whatever the size of the database.

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, ToSql};
use tokio::sync::mpsc;

use portcullis_store::transfer::{Batcher, Chunk, Kind, Row, Table, Value, META, TABLES};
use portcullis_store::StoreError;

use crate::{open_connection, Db, SqliteStore};

/// Batches in flight between a blocking thread and the async side.
const IN_FLIGHT: usize = 2;

impl SqliteStore {
    /// Reads a copy of every table (see the module's documentation). The receiver gets an
    /// `Err` and nothing after it if reading fails.
    pub fn export(&self) -> mpsc::Receiver<Result<Chunk, StoreError>> {
        let (tx, rx) = mpsc::channel(IN_FLIGHT);
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let result = open_connection(&path, false).and_then(|conn| export(&conn, &tx));
            if let Err(e) = result {
                let _ = tx.blocking_send(Err(e));
            }
        });
        // A dropped receiver (the copy given up) ends the thread at its next send.
        rx
    }

    /// The first table of the copy that has rows, with how many; `None` when the database
    /// holds nothing a copy would overwrite.
    pub async fn first_nonempty_table(&self) -> Result<Option<(&'static str, u64)>, StoreError> {
        self.read(|conn| {
            for table in TABLES.iter().filter(|t| t.name != META.name) {
                let n = count(conn, table.name)?;
                if n > 0 {
                    return Ok(Some((table.name, n)));
                }
            }
            Ok(None)
        })
        .await
    }

    /// Rows per table of [`TABLES`], in its order.
    pub async fn table_counts(&self) -> Result<Vec<u64>, StoreError> {
        self.read(|conn| TABLES.iter().map(|t| count(conn, t.name)).collect()).await
    }

    /// Writes what an export sends into this database, which must hold nothing yet (checked
    /// again inside the transaction). Returns the rows written per table; nothing is kept
    /// unless the stream reached [`Chunk::End`].
    pub async fn import(&self, chunks: mpsc::Receiver<Chunk>) -> Result<Vec<u64>, StoreError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = open_connection(&path, false)?;
            conn.execute_batch("BEGIN IMMEDIATE").db()?;
            let result = import(&conn, chunks);
            let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
            match (result, conn.execute_batch(end).db()) {
                (Ok(written), Ok(())) => Ok(written),
                (Err(e), _) | (Ok(_), Err(e)) => Err(e),
            }
        })
        .await
        .map_err(|e| StoreError::Backend(format!("the import thread failed: {e}")))?
    }
}

fn count(conn: &Connection, table: &str) -> Result<u64, StoreError> {
    let n: i64 = conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).db()?;
    Ok(n.max(0) as u64)
}

/// Sends `chunk`; `false` when nobody listens any more (the copy was given up).
fn send(tx: &mpsc::Sender<Result<Chunk, StoreError>>, chunk: Chunk) -> bool {
    tx.blocking_send(Ok(chunk)).is_ok()
}

fn export(conn: &Connection, tx: &mpsc::Sender<Result<Chunk, StoreError>>) -> Result<(), StoreError> {
    // Deferred, so the snapshot is taken by the first read, the counts, and every statement
    // after it sees the same moment.
    conn.execute_batch("BEGIN").db()?;
    let counts = TABLES.iter().map(|t| count(conn, t.name)).collect::<Result<Vec<_>, _>>()?;
    if !send(tx, Chunk::Counts(counts)) {
        return Ok(());
    }
    for (index, table) in TABLES.iter().enumerate() {
        let columns: Vec<String> = table.columns.iter().map(|(c, _)| format!("\"{c}\"")).collect();
        let sql = format!("SELECT {} FROM {} ORDER BY {}", columns.join(", "), table.name, table.order_by);
        let mut stmt = conn.prepare(&sql).db()?;
        let mut rows = stmt.query([]).db()?;
        let mut batcher = Batcher::default();
        while let Some(row) = rows.next().db()? {
            let values = table
                .columns
                .iter()
                .enumerate()
                .map(|(i, (name, kind))| value(row.get_ref(i).db()?, *kind, table, name))
                .collect::<Result<Row, _>>()?;
            if let Some(batch) = batcher.push(values) {
                if !send(tx, Chunk::Rows { table: index, rows: batch }) {
                    return Ok(());
                }
            }
        }
        let rest = batcher.take();
        if !rest.is_empty() && !send(tx, Chunk::Rows { table: index, rows: rest }) {
            return Ok(());
        }
    }
    conn.execute_batch("COMMIT").db()?;
    send(tx, Chunk::End);
    Ok(())
}

/// One stored value as the column's kind says (SQLite's booleans are 0/1 integers).
fn value(stored: ValueRef<'_>, kind: Kind, table: &Table, column: &str) -> Result<Value, StoreError> {
    Ok(match (stored, kind) {
        (ValueRef::Null, _) => Value::Null,
        (ValueRef::Integer(n), Kind::Int) => Value::Int(n),
        (ValueRef::Integer(n), Kind::Bool) => Value::Bool(n != 0),
        (ValueRef::Text(t), Kind::Text) => Value::Text(
            String::from_utf8(t.to_vec())
                .map_err(|_| StoreError::Backend(format!("{}.{column} holds text that is not UTF-8", table.name)))?,
        ),
        (ValueRef::Blob(b), Kind::Bytes) => Value::Bytes(b.to_vec()),
        (other, _) => {
            return Err(StoreError::Backend(format!(
                "{}.{column} holds a {:?} where {kind:?} was expected",
                table.name,
                other.data_type()
            )))
        }
    })
}

/// A [`Value`] as a SQLite parameter.
struct Param<'a>(&'a Value);

impl ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(n) => ToSqlOutput::Borrowed(ValueRef::Integer(*n)),
            Value::Bool(b) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(*b))),
            Value::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
            Value::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

fn import(conn: &Connection, mut chunks: mpsc::Receiver<Chunk>) -> Result<Vec<u64>, StoreError> {
    for table in TABLES.iter().filter(|t| t.name != META.name) {
        let n = count(conn, table.name)?;
        if n > 0 {
            return Err(StoreError::Backend(format!("the destination is not empty: {} has {n} rows", table.name)));
        }
    }
    let mut written = vec![0u64; TABLES.len()];
    loop {
        match chunks.blocking_recv() {
            None => return Err(StoreError::Backend("the copy stopped before its end; nothing was written".into())),
            Some(Chunk::Counts(_)) => {}
            Some(Chunk::End) => break,
            Some(Chunk::Rows { table, rows }) => {
                let spec = TABLES
                    .get(table)
                    .ok_or_else(|| StoreError::Backend(format!("the copy names table #{table}, which is unknown")))?;
                written[table] += rows.len() as u64;
                insert(conn, spec, &rows)?;
            }
        }
    }
    // The messages' insert trigger added their sizes to their accounts' usage, which was
    // copied as it was: take them off again, so usage is the source's exactly.
    conn.execute(
        "UPDATE accounts SET used_bytes = used_bytes - (SELECT coalesce(sum(m.size), 0) FROM messages m
           JOIN mailboxes x ON x.id = m.mailbox_id WHERE x.account_id = accounts.id)",
        [],
    )
    .db()?;
    Ok(written)
}

fn insert(conn: &Connection, table: &Table, rows: &[Row]) -> Result<(), StoreError> {
    if table.name == META.name {
        // Merged (see `META`): the larger value wins; `last_id.*` of the tables SQLite keeps
        // one for, and of the others too (harmless: `next_id` takes the larger of it and max(id)).
        let mut stmt = conn
            .prepare_cached(
                "INSERT INTO meta(key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
            )
            .db()?;
        for row in rows {
            stmt.execute(params![Param(&row[0]), Param(&row[1])]).db()?;
        }
        return Ok(());
    }
    let columns: Vec<String> = table.columns.iter().map(|(c, _)| format!("\"{c}\"")).collect();
    let marks: Vec<String> = (1..=columns.len()).map(|n| format!("?{n}")).collect();
    let sql = format!("INSERT INTO {} ({}) VALUES ({})", table.name, columns.join(", "), marks.join(", "));
    let mut stmt = conn.prepare_cached(&sql).db()?;
    for row in rows {
        if row.len() != table.columns.len() {
            return Err(StoreError::Backend(format!("a row of {} has {} values", table.name, row.len())));
        }
        let params: Vec<Param<'_>> = row.iter().map(Param).collect();
        stmt.execute(rusqlite::params_from_iter(params.iter()))
            .map_err(|e| StoreError::Backend(format!("cannot copy a row of {}: {e}", table.name)))?;
    }
    Ok(())
}
