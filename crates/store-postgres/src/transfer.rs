//! `store migrate` on PostgreSQL: the export reads every table of `portcullis_store::transfer`
//! in one read-only REPEATABLE READ transaction (one snapshot, so running nodes may keep
//! writing), through portals a page at a time; the import writes a copy into an empty database
//! in one transaction, which commits only when the export said it is complete, and sets each
//! identity sequence past the copied ids.
//!
//! Values travel as BIGINT, TEXT, BYTEA or BOOLEAN: every placeholder and every selected column
//! is cast to the kind's type, so the INTEGER columns (`flags`, `scopes`) take and give `i64`
//! like the others and SQLite's 0/1 booleans become PostgreSQL's.

use tokio::sync::mpsc;
use tokio_postgres::types::ToSql;
use tokio_postgres::{IsolationLevel, Transaction};

use portcullis_store::transfer::{last_id_key, Batcher, Chunk, Kind, Row, Table, Value, META, TABLES};
use portcullis_store::StoreError;

use crate::{Db, PgStore};

/// Batches in flight between the reading task and the writer.
const IN_FLIGHT: usize = 2;
/// Rows fetched from a portal at a time: few where a row may hold a whole message.
const PAGE_SMALL_ROWS: i32 = 500;
const PAGE_LARGE_ROWS: i32 = 8;
/// Placeholders per INSERT at most (PostgreSQL's limit is 65535).
const MAX_PARAMS: usize = 30_000;

impl PgStore {
    /// Reads a copy of every table (see the module's documentation). The receiver gets an
    /// `Err` and nothing after it if reading fails.
    pub fn export(&self) -> mpsc::Receiver<Result<Chunk, StoreError>> {
        let (tx, rx) = mpsc::channel(IN_FLIGHT);
        let pool = self.pool.clone();
        tokio::spawn(async move {
            let result = async {
                let mut client =
                    pool.get().await.map_err(|e| StoreError::Backend(format!("cannot reach the database: {e}")))?;
                let snapshot = client
                    .build_transaction()
                    .isolation_level(IsolationLevel::RepeatableRead)
                    .read_only(true)
                    .start()
                    .await
                    .db()?;
                export(&snapshot, &tx).await?;
                snapshot.commit().await.db()
            }
            .await;
            if let Err(e) = result {
                let _ = tx.send(Err(e)).await;
            }
        });
        // A dropped receiver (the copy given up) ends the task at its next send.
        rx
    }

    /// The first table of the copy that has rows, with how many; `None` when the database
    /// holds nothing a copy would overwrite.
    pub async fn first_nonempty_table(&self) -> Result<Option<(&'static str, u64)>, StoreError> {
        let client = self.client().await?;
        for table in TABLES.iter().filter(|t| t.name != META.name) {
            let n = count(&**client, table.name).await?;
            if n > 0 {
                return Ok(Some((table.name, n)));
            }
        }
        Ok(None)
    }

    /// Rows per table of [`TABLES`], in its order.
    pub async fn table_counts(&self) -> Result<Vec<u64>, StoreError> {
        let client = self.client().await?;
        let mut counts = Vec::with_capacity(TABLES.len());
        for table in TABLES {
            counts.push(count(&**client, table.name).await?);
        }
        Ok(counts)
    }

    /// Writes what an export sends into this database, which must hold nothing yet (checked
    /// again inside the transaction). Returns the rows written per table; nothing is kept
    /// unless the stream reached [`Chunk::End`].
    pub async fn import(&self, mut chunks: mpsc::Receiver<Chunk>) -> Result<Vec<u64>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        for table in TABLES.iter().filter(|t| t.name != META.name) {
            let n = count(&*tx, table.name).await?;
            if n > 0 {
                return Err(StoreError::Backend(format!("the destination is not empty: {} has {n} rows", table.name)));
            }
        }
        let mut written = vec![0u64; TABLES.len()];
        let mut last_ids = Vec::new();
        loop {
            match chunks.recv().await {
                // Dropping `tx` rolls it back.
                None => return Err(StoreError::Backend("the copy stopped before its end; nothing was written".into())),
                Some(Chunk::Counts(_)) => {}
                Some(Chunk::End) => break,
                Some(Chunk::Rows { table, rows }) => {
                    let spec = TABLES.get(table).ok_or_else(|| {
                        StoreError::Backend(format!("the copy names table #{table}, which is unknown"))
                    })?;
                    written[table] += rows.len() as u64;
                    if spec.name == META.name {
                        merge_meta(&tx, &rows, &mut last_ids).await?;
                    } else {
                        insert(&tx, spec, &rows).await?;
                    }
                }
            }
        }
        // The messages' insert trigger added their sizes to their accounts' usage, which was
        // copied as it was: take them off again, so usage is the source's exactly.
        tx.execute(
            "UPDATE accounts SET used_bytes = used_bytes - (SELECT coalesce(sum(m.size), 0) FROM messages m
               JOIN mailboxes x ON x.id = m.mailbox_id WHERE x.account_id = accounts.id)",
            &[],
        )
        .await
        .db()?;
        // Each sequence past the copied ids and past the largest id the source ever handed
        // out, so no id is given twice (a session may still hold a removed account's id).
        for table in TABLES.iter().filter(|t| t.identity) {
            let floor = last_ids.iter().find(|(key, _)| *key == last_id_key(table.name)).map_or(0, |(_, v)| *v);
            tx.execute(
                &format!(
                    "SELECT setval('{t}_id_seq', greatest(coalesce(max(id), 0), $1::bigint, 1),
                                   greatest(coalesce(max(id), 0), $1::bigint) > 0) FROM {t}",
                    t = table.name
                ),
                &[&floor],
            )
            .await
            .db()?;
        }
        tx.commit().await.db()?;
        Ok(written)
    }
}

async fn count(client: &impl tokio_postgres::GenericClient, table: &str) -> Result<u64, StoreError> {
    let n: i64 = client.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.db()?.get(0);
    Ok(n.max(0) as u64)
}

/// The column as the kind's PostgreSQL type.
fn cast(kind: Kind) -> &'static str {
    match kind {
        Kind::Int => "bigint",
        Kind::Text => "text",
        Kind::Bytes => "bytea",
        Kind::Bool => "boolean",
    }
}

async fn export(tx: &Transaction<'_>, out: &mpsc::Sender<Result<Chunk, StoreError>>) -> Result<(), StoreError> {
    let mut counts = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        counts.push(count(tx, table.name).await?);
    }
    if out.send(Ok(Chunk::Counts(counts))).await.is_err() {
        return Ok(());
    }
    for (index, table) in TABLES.iter().enumerate() {
        let columns: Vec<String> = table.columns.iter().map(|(c, kind)| format!("\"{c}\"::{}", cast(*kind))).collect();
        let sql = if table.name == META.name {
            // With SQLite's `last_id.TABLE` rows, made from the sequences (see `transfer::META`).
            let sequences: String = TABLES
                .iter()
                .filter(|t| t.identity)
                .map(|t| {
                    format!(
                        " UNION ALL SELECT '{}', CASE WHEN is_called THEN last_value ELSE 0 END FROM {}_id_seq",
                        last_id_key(t.name),
                        t.name
                    )
                })
                .collect();
            format!("SELECT * FROM (SELECT key, value FROM meta{sequences}) meta_rows ORDER BY key")
        } else {
            format!("SELECT {} FROM {} ORDER BY {}", columns.join(", "), table.name, table.order_by)
        };
        let large = table.columns.iter().any(|(_, kind)| *kind == Kind::Bytes);
        let page = if large { PAGE_LARGE_ROWS } else { PAGE_SMALL_ROWS };
        let portal = tx.bind(&sql, &[]).await.db()?;
        let mut batcher = Batcher::default();
        loop {
            let rows = tx.query_portal(&portal, page).await.db()?;
            for row in &rows {
                let values = table
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, (_, kind))| value(row, i, *kind))
                    .collect::<Result<Row, _>>()?;
                if let Some(batch) = batcher.push(values) {
                    if out.send(Ok(Chunk::Rows { table: index, rows: batch })).await.is_err() {
                        return Ok(());
                    }
                }
            }
            if rows.len() < page as usize {
                break;
            }
        }
        let rest = batcher.take();
        if !rest.is_empty() && out.send(Ok(Chunk::Rows { table: index, rows: rest })).await.is_err() {
            return Ok(());
        }
    }
    let _ = out.send(Ok(Chunk::End)).await;
    Ok(())
}

fn value(row: &tokio_postgres::Row, i: usize, kind: Kind) -> Result<Value, StoreError> {
    Ok(match kind {
        Kind::Int => row.try_get::<_, Option<i64>>(i).db()?.map_or(Value::Null, Value::Int),
        Kind::Text => row.try_get::<_, Option<String>>(i).db()?.map_or(Value::Null, Value::Text),
        Kind::Bytes => row.try_get::<_, Option<Vec<u8>>>(i).db()?.map_or(Value::Null, Value::Bytes),
        Kind::Bool => row.try_get::<_, Option<bool>>(i).db()?.map_or(Value::Null, Value::Bool),
    })
}

/// A [`Value`] as a parameter of the kind's type (a NULL typed too).
fn param(value: &Value, kind: Kind, table: &Table, column: &str) -> Result<Box<dyn ToSql + Sync + Send>, StoreError> {
    Ok(match (value, kind) {
        (Value::Null, Kind::Int) => Box::new(None::<i64>),
        (Value::Null, Kind::Text) => Box::new(None::<String>),
        (Value::Null, Kind::Bytes) => Box::new(None::<Vec<u8>>),
        (Value::Null, Kind::Bool) => Box::new(None::<bool>),
        (Value::Int(n), Kind::Int) => Box::new(*n),
        (Value::Text(t), Kind::Text) => Box::new(t.clone()),
        (Value::Bytes(b), Kind::Bytes) => Box::new(b.clone()),
        (Value::Bool(b), Kind::Bool) => Box::new(*b),
        (other, _) => {
            return Err(StoreError::Backend(format!("{}.{column}: {other:?} where {kind:?} was expected", table.name)))
        }
    })
}

/// Inserts `rows` as few multi-row INSERTs; ids as they were (OVERRIDING SYSTEM VALUE).
async fn insert(tx: &Transaction<'_>, table: &Table, rows: &[Row]) -> Result<(), StoreError> {
    let width = table.columns.len();
    let columns: Vec<String> = table.columns.iter().map(|(c, _)| format!("\"{c}\"")).collect();
    let overriding = if table.identity { " OVERRIDING SYSTEM VALUE" } else { "" };
    for group in rows.chunks((MAX_PARAMS / width).max(1)) {
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::with_capacity(group.len() * width);
        let mut tuples = Vec::with_capacity(group.len());
        for row in group {
            if row.len() != width {
                return Err(StoreError::Backend(format!("a row of {} has {} values", table.name, row.len())));
            }
            let marks: Vec<String> = table
                .columns
                .iter()
                .enumerate()
                .map(|(i, (_, kind))| format!("${}::{}", params.len() + i + 1, cast(*kind)))
                .collect();
            for ((column, kind), value) in table.columns.iter().zip(row) {
                params.push(param(value, *kind, table, column)?);
            }
            tuples.push(format!("({})", marks.join(", ")));
        }
        let sql =
            format!("INSERT INTO {} ({}){overriding} VALUES {}", table.name, columns.join(", "), tuples.join(", "));
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
        tx.execute(&sql, &refs)
            .await
            .map_err(|e| StoreError::Backend(format!("cannot copy rows of {}: {}", table.name, crate::describe(&e))))?;
    }
    Ok(())
}

/// `meta` merged (see `transfer::META`): counters keep the larger value; `last_id.TABLE`
/// becomes a floor for TABLE's sequence, set at the end.
async fn merge_meta(tx: &Transaction<'_>, rows: &[Row], last_ids: &mut Vec<(String, i64)>) -> Result<(), StoreError> {
    for row in rows {
        let (Some(Value::Text(key)), Some(Value::Int(value))) = (row.first(), row.get(1)) else {
            return Err(StoreError::Backend(format!("a meta row is not a key and a number: {row:?}")));
        };
        if key.starts_with("last_id.") {
            last_ids.push((key.clone(), *value));
            continue;
        }
        tx.execute(
            "INSERT INTO meta(key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = greatest(meta.value, excluded.value)",
            &[key, value],
        )
        .await
        .db()?;
    }
    Ok(())
}
