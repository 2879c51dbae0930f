//! A measurement, not a check (ignored by default): the statements one IMAP STORE costs on
//! PostgreSQL as its client sends them (pg_stat_statements with its default `track = top`, so
//! a function's own statements are not counted; the extension is loaded by restarting this
//! binary's private cluster), for the kinds of STORE a client sends: system flags that change,
//! ones that change nothing, with UNCHANGEDSINCE, and one naming a keyword (issue 17; compare
//! docs/benchmarks.md, "Where the time goes on PostgreSQL").
//!
//!   cargo test -p portcullis-store-postgres --test store_statements -j2 -- --ignored --nocapture

mod common;

use common::*;
use portcullis_store::*;
use portcullis_store_postgres::PgStore;

const ROUNDS: usize = 100;

async fn sql(url: &str, text: &str) -> Vec<tokio_postgres::Row> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client.query(text, &[]).await.unwrap()
}

/// Runs `store` ROUNDS times (round `i` given) and prints the statements each cost, by text.
async fn measure<F: std::future::Future<Output = ()>>(url: &str, label: &str, mut store: impl FnMut(usize) -> F) {
    sql(url, "SELECT pg_stat_statements_reset()").await;
    for i in 0..ROUNDS {
        store(i).await;
    }
    let rows = sql(
        url,
        "SELECT calls::bigint, query FROM pg_stat_statements
          WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND query NOT LIKE '%pg_stat_%'
          ORDER BY calls DESC",
    )
    .await;
    let statements: i64 = rows.iter().map(|r| r.get::<_, i64>(0)).sum();
    println!("{label}: {:.2} statements per STORE", statements as f64 / ROUNDS as f64);
    for r in &rows {
        let query: String = r.get(1);
        println!("  {:>6} {}", r.get::<_, i64>(0), query.split_whitespace().collect::<Vec<_>>().join(" "));
    }
}

/// Add in even rounds, Remove in odd ones, so that every round changes something.
fn alternate(round: usize) -> FlagOp {
    if round.is_multiple_of(2) {
        FlagOp::Add
    } else {
        FlagOp::Remove
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn statements_per_store() {
    let Some(cluster) = cluster() else { return };
    let admin = cluster.url("postgres");
    sql(&admin, "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'").await;
    cluster.restart();
    let url = cluster.fresh_database();
    sql(&url, "CREATE EXTENSION pg_stat_statements").await;
    let store = PgStore::connect(&url, None).await.unwrap();
    let a = account(&store, "a@example.org").await;
    let inbox = store.mailbox(a, "INBOX").await.unwrap().unwrap().id;
    for i in 0..10 {
        store.append(inbox, format!("Subject: {i}\r\n\r\nbody\r\n").into_bytes(), Flags::default(), 0).await.unwrap();
    }
    let s = &store;
    let system = |i: usize| {
        let op = alternate(i);
        async move {
            let update = s.store_flags(inbox, &[1, 2, 3], op, &Flags::system(Flags::SEEN), None).await.unwrap();
            assert_eq!(update.updated.len(), 3);
        }
    };
    measure(&url, "system flags, changing", system).await;
    let nothing = |_| async move {
        let update = s.store_flags(inbox, &[4, 5], FlagOp::Remove, &Flags::system(Flags::SEEN), None).await.unwrap();
        assert!(update.updated.is_empty());
    };
    measure(&url, "system flags, changing nothing", nothing).await;
    let since = |i: usize| {
        let op = alternate(i);
        async move {
            let highest = u64::MAX >> 1;
            let update = s.store_flags(inbox, &[6], op, &Flags::system(Flags::FLAGGED), Some(highest)).await.unwrap();
            assert_eq!(update.updated.len(), 1);
        }
    };
    measure(&url, "system flags with UNCHANGEDSINCE", since).await;
    let keyword = |i: usize| {
        let op = alternate(i);
        async move {
            let change = Flags { system: 0, keywords: vec!["Work".into()] };
            let update = s.store_flags(inbox, &[7], op, &change, None).await.unwrap();
            assert_eq!(update.updated.len(), 1);
        }
    };
    measure(&url, "a keyword", keyword).await;
}
