//! Whole messages (SEARCH BODY and TEXT, FETCH of whole bodies, POP3's RETR) read in pieces,
//! so that reading a message costs the message and one piece, as SQLite's incremental blob I/O
//! does, not the several copies a single large `bytea` value makes on its way through the
//! client (the protocol buffer that grows to hold the row, the row, the `Vec` taken from it).
//! Read whole, a 16 MiB text part grew the server by about 67 MB more than SEARCH's bound.
//!
//! One statement reads the first piece of every message asked for, so a group of small
//! messages still costs one round trip; only the rest of a message larger than a piece is read
//! piece by piece, into a buffer of the message's exact size. All of it in one REPEATABLE READ
//! snapshot, so the pieces of a message are of one message even if it is expunged meanwhile.
//! `substring` on `blobs.data` (stored `EXTERNAL`, uncompressed) reads only the TOAST chunks
//! of its piece, and `octet_length` reads only the value's header.

use std::collections::HashMap;

use portcullis_store::*;

use crate::{Db, PgStore};

/// The bytes of one piece: what one row may carry. Small beside the bounds the callers keep
/// (SEARCH's group of 1 MiB, FETCH's chunks of 256 KiB), large enough that a 16 MiB message
/// takes 64 round trips.
const PIECE: i32 = 256 * 1024;

/// Whole messages in the order asked, missing UIDs omitted, a UID asked for twice answered
/// twice (as SQLite's backend does).
pub(super) async fn whole_messages(
    client: &mut deadpool_postgres::Client,
    mailbox: MailboxId,
    uids: &[u32],
) -> Result<Vec<(u32, Vec<u8>)>, StoreError> {
    if uids.is_empty() {
        return Ok(Vec::new());
    }
    let tx = PgStore::snapshot(client).await?;
    let wanted: Vec<i64> = uids.iter().map(|&u| i64::from(u)).collect();
    let first = tx
        .prepare_cached(
            "SELECT m.uid, m.blob_id, octet_length(b.data)::bigint, substring(b.data FROM 1 FOR $3)
               FROM messages m JOIN blobs b ON b.id = m.blob_id
              WHERE m.mailbox_id = $1 AND m.uid = ANY($2)",
        )
        .await
        .db()?;
    let mut found: HashMap<u32, (i64, usize, Vec<u8>)> = HashMap::with_capacity(uids.len());
    for row in tx.query(&first, &[&mailbox, &wanted, &PIECE]).await.db()? {
        let total = row.get::<_, i64>(2).max(0) as usize;
        let piece: &[u8] = row.get(3);
        // The buffer is the message's exact size from the start: no doubling as it fills.
        let mut content = Vec::with_capacity(total);
        content.extend_from_slice(piece);
        found.insert(row.get::<_, i64>(0) as u32, (row.get(1), total, content));
    }
    let rest = tx.prepare_cached("SELECT substring(data FROM $2 FOR $3) FROM blobs WHERE id = $1").await.db()?;
    let mut out = Vec::with_capacity(uids.len());
    for (i, &uid) in uids.iter().enumerate() {
        let again = uids[i + 1..].contains(&uid);
        let Some((blob, total, mut content)) = (if again { found.get(&uid).cloned() } else { found.remove(&uid) })
        else {
            continue;
        };
        while content.len() < total {
            // bytea is at most 1 GB, so every offset fits substring's integer (1-based).
            let from = i32::try_from(content.len() + 1).unwrap_or(i32::MAX);
            let row = tx.query_one(&rest, &[&blob, &from, &PIECE]).await.db()?;
            let piece: &[u8] = row.get(0);
            if piece.is_empty() {
                break; // Cannot happen within one snapshot; never loop on it.
            }
            content.extend_from_slice(piece);
        }
        // Read completely, the remaining pieces are a clone's to read again, not this copy's.
        if again {
            found.insert(uid, (blob, total, content.clone()));
        }
        out.push((uid, content));
    }
    tx.commit().await.db()?;
    Ok(out)
}
