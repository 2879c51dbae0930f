//! Which nodes are alive, and signals too large for a NOTIFY: what a question asked of every
//! node (the admin API's sessions of every node) needs beyond LISTEN/NOTIFY.
//!
//! Alive: a node that listens to signals (a server does; the CLI, which would never answer, does
//! not) has a row in `nodes` from its first subscription, renewed by its heartbeat to [`TTL`]
//! ahead (by the database's clock) and deleted when it stops; a node that dies (SIGKILL) stays
//! listed until its row expires, and is reported meanwhile as not answering, which is what it
//! does.
//!
//! Large signals: PostgreSQL refuses a NOTIFY payload of 8000 bytes or more, and a node's list
//! of sessions can be larger. Such a signal is written to `signal_bodies` and the NOTIFY,
//! sent by the same statement (so delivered only once the row is committed), names the row;
//! each node reads it when it hears the name. Rows expire after [`TTL`] and the heartbeats
//! delete them; every node has read a row long before.

use deadpool_postgres::Pool;
use portcullis_store::{NodeSignal, StoreError};

use super::listen::SIGNAL_CHANNEL;
use super::slots::TTL;
use crate::tls::RustlsConnector;
use crate::Db;

/// The largest payload a NOTIFY carries (PostgreSQL: shorter than 8000 bytes).
const NOTIFY_MAX: usize = 7999;
/// What a NOTIFY for a stored signal says before the row's id.
const STORED: &str = "stored ";

/// The database's time in Unix seconds.
const DB_NOW: &str = "extract(epoch FROM clock_timestamp())::bigint";

/// Adds or renews this node's row.
pub(crate) async fn renew(pool: &Pool, node: &str) -> Result<(), StoreError> {
    let client = pool.get().await.map_err(|e| StoreError::Backend(format!("cannot reach the database: {e}")))?;
    client
        .execute(
            &format!(
                "INSERT INTO nodes(node, expires) VALUES ($1, {DB_NOW} + {TTL})
                 ON CONFLICT (node) DO UPDATE SET expires = excluded.expires"
            ),
            &[&node],
        )
        .await
        .db()?;
    // Any node clears what expired: a dead node's row, bodies every node has read.
    client.execute(&format!("DELETE FROM nodes WHERE expires <= {DB_NOW}"), &[]).await.db()?;
    client.execute(&format!("DELETE FROM signal_bodies WHERE expires <= {DB_NOW}"), &[]).await.db()?;
    Ok(())
}

/// Deletes this node's row (it stops), on the runtime if there is one; without, the row is
/// left to expire. On a connection of its own: the store's pool closes as the node stops.
pub(crate) fn forget(config: tokio_postgres::Config, tls: RustlsConnector, node: String) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    runtime.spawn(async move {
        let Ok((client, connection)) = config.connect(tls).await else { return };
        let driver = tokio::spawn(connection);
        let _ = client.execute("DELETE FROM nodes WHERE node = $1", &[&node]).await;
        drop(client);
        let _ = driver.await;
    });
}

/// The nodes whose rows have not expired, sorted.
pub(crate) async fn live(pool: &Pool) -> Result<Vec<String>, StoreError> {
    let client = pool.get().await.map_err(|e| StoreError::Backend(format!("cannot reach the database: {e}")))?;
    let rows =
        client.query(&format!("SELECT node FROM nodes WHERE expires > {DB_NOW} ORDER BY node"), &[]).await.db()?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Sends `signal` to every node: as the NOTIFY payload when it fits, otherwise through
/// `signal_bodies`.
pub(crate) async fn publish(pool: &Pool, signal: &NodeSignal) -> Result<(), StoreError> {
    let client = pool.get().await.map_err(|e| StoreError::Backend(format!("cannot reach the database: {e}")))?;
    let payload = signal.payload();
    if payload.len() <= NOTIFY_MAX {
        client.execute("SELECT pg_notify($1, $2)", &[&SIGNAL_CHANNEL, &payload]).await.db()?;
    } else {
        client
            .execute(
                &format!(
                    "WITH body AS (INSERT INTO signal_bodies(body, expires) VALUES ($2, {DB_NOW} + {TTL}) RETURNING id)
                     SELECT pg_notify($1, '{STORED}' || id) FROM body"
                ),
                &[&SIGNAL_CHANNEL, &payload],
            )
            .await
            .db()?;
    }
    Ok(())
}

/// The row a NOTIFY payload names, if it names one.
pub(crate) fn stored_id(payload: &str) -> Option<i64> {
    payload.strip_prefix(STORED)?.parse().ok()
}

/// The signal stored in row `id`; `None` if it is gone or is not a signal.
pub(crate) async fn stored(pool: &Pool, id: i64) -> Option<NodeSignal> {
    let client = pool.get().await.ok()?;
    let row = client.query_opt("SELECT body FROM signal_bodies WHERE id = $1", &[&id]).await.ok()??;
    NodeSignal::parse(row.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_stored_rows_name_is_read_as_one() {
        assert_eq!(stored_id("stored 42"), Some(42));
        for other in ["stored", "stored ", "stored x", "stored 4 2", "bans", "42"] {
            assert_eq!(stored_id(other), None, "{other:?}");
        }
    }
}
