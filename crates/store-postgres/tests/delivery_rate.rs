//! A measurement, not a check (ignored by default): the rate of concurrent local deliveries on
//! PostgreSQL, every message to one account and spread over eight, with the statements and
//! commits each delivery costs (pg_stat_statements, loaded by restarting this binary's private
//! cluster). A debug build's rate is not the release benchmark's (bench/postgres.sh); the
//! statements and commits per delivery are the same.
//!
//!   cargo test -p portcullis-store-postgres --test delivery_rate -j2 -- --ignored --nocapture

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::*;
use portcullis_store::*;
use portcullis_store_postgres::PgStore;

const CLIENTS: usize = 8;
const MESSAGES: usize = 100;
const SIZE: usize = 10 * 1024;

async fn sql(url: &str, text: &str) -> Vec<tokio_postgres::Row> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client.query(text, &[]).await.unwrap()
}

/// Delivers CLIENTS x MESSAGES messages, client `c` to `targets[c % targets.len()]`; prints
/// the rate and what each delivery cost the database.
async fn run(url: &str, store: &Arc<PgStore>, label: &str, targets: &[AccountId]) {
    sql(url, "SELECT pg_stat_statements_reset()").await;
    let commits = |rows: Vec<tokio_postgres::Row>| rows[0].get::<_, i64>(0);
    let xact = "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()";
    let before = commits(sql(url, xact).await);
    let started = Instant::now();
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (store, to) = (store.clone(), targets[c % targets.len()]);
        clients.push(tokio::spawn(async move {
            for m in 0..MESSAGES {
                let mut raw = format!("Subject: {c}.{m}\r\n\r\n").into_bytes();
                raw.resize(SIZE, b'x');
                store.deliver(Delivery { recipients: vec![to], raw, internal_date: 0 }).await.unwrap();
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let n = (CLIENTS * MESSAGES) as f64;
    // Counted after the run; the statistics collector may lag by a little (pg_stat_database
    // is flushed by each backend at its transaction ends, within a second).
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let after = commits(sql(url, xact).await);
    let rows = sql(
        url,
        "SELECT calls::bigint, query FROM pg_stat_statements
          WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
          ORDER BY calls DESC",
    )
    .await;
    let statements: i64 = rows.iter().map(|r| r.get::<_, i64>(0)).sum();
    println!(
        "{label}: {:.0} msgs/s, {:.2} statements and {:.3} commits per delivery",
        n / elapsed,
        statements as f64 / n,
        (after - before) as f64 / n
    );
    for r in rows.iter().take(12) {
        let query: String = r.get(1);
        println!("  {:>6} {}", r.get::<_, i64>(0), query.split_whitespace().collect::<Vec<_>>().join(" "));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn concurrent_deliveries_one_account_and_spread() {
    let Some(cluster) = cluster() else { return };
    let admin = cluster.url("postgres");
    sql(&admin, "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'").await;
    cluster.restart();
    let url = cluster.fresh_database();
    sql(&url, "CREATE EXTENSION pg_stat_statements").await;
    let store = Arc::new(PgStore::connect(&url, None).await.unwrap());
    let mut accounts = Vec::new();
    for i in 0..CLIENTS {
        accounts.push(account(&store, &format!("rcpt{i}@example.org")).await);
    }
    run(&url, &store, "warm-up", &accounts[..1]).await;
    run(&url, &store, "one account", &accounts[..1]).await;
    run(&url, &store, "spread over 8", &accounts).await;
}
