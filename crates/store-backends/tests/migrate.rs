//! `migrate::migrate` between the backends: a SQLite store with something in every table is
//! copied to PostgreSQL and back to SQLite, and each copy serves the same mailboxes (ids,
//! UIDVALIDITY, UIDs, MODSEQs, flags, keywords, bodies shared as before), the same accounts
//! and credentials, bans, queue (leases cleared) and keys; new rows get fresh ids; a destination
//! that holds anything is refused and left as it was. Without PostgreSQL: SKIPPED.

use std::sync::OnceLock;

use portcullis_store::*;
use portcullis_store_backends::migrate::{migrate, Endpoint, Progress};
use portcullis_testpg::PgCluster;

fn cluster() -> Option<&'static PgCluster> {
    static CLUSTER: OnceLock<Option<PgCluster>> = OnceLock::new();
    CLUSTER.get_or_init(PgCluster::start).as_ref()
}

fn message(subject: &str) -> Vec<u8> {
    format!("Date: Tue, 14 Nov 2023 22:13:20 +0000\r\nFrom: a@example.org\r\nSubject: {subject}\r\n\r\nHello.\r\n")
        .into_bytes()
}

/// The store behind an endpoint, through its traits.
fn store(end: &Endpoint) -> &dyn Store {
    match end {
        Endpoint::Sqlite(s) => s,
        Endpoint::Postgres(s) => s,
    }
}

/// Something in every table the copy moves.
async fn populate(s: &dyn Store) {
    s.add_domain("example.org").await.unwrap();
    s.add_domain("example.net").await.unwrap();
    let secrets = PasswordSecrets::hash_only("$argon2id$alice");
    let alice = s.add_account("alice@example.org", &secrets, Quota::Bytes(1 << 30)).await.unwrap();
    let bob =
        s.add_account("bob@example.org", &PasswordSecrets::hash_only("$argon2id$bob"), Quota::Default).await.unwrap();
    // An account removed: its id must never be handed out again, on either backend.
    let gone = s.add_account("gone@example.org", &PasswordSecrets::hash_only("$x"), Quota::Default).await.unwrap();
    assert!(gone > bob);
    s.remove_account("gone@example.org").await.unwrap();

    s.deliver(Delivery { recipients: vec![alice, bob], raw: message("shared"), internal_date: 1_700_000_000 })
        .await
        .unwrap();
    let inbox = s.mailbox(alice, "INBOX").await.unwrap().unwrap();
    let mut uids = Vec::new();
    for n in 0..1200 {
        uids.push(s.append(inbox.id, message(&format!("m{n}")), Flags::default(), 1_700_000_000 + n).await.unwrap());
    }
    let flags = Flags { system: 1 | 4, keywords: vec!["$Important".into(), "Project".into()] };
    s.store_flags(inbox.id, &uids[..10], FlagOp::Add, &flags, None).await.unwrap();
    s.expunge(inbox.id, &uids[10..12]).await.unwrap();
    let archive = s.mailbox(alice, "Archive").await.unwrap().unwrap();
    s.copy_messages(inbox.id, &uids[..3], archive.id).await.unwrap();
    s.set_subscribed(alice, "Gone/Child", true).await.unwrap();

    s.add_app_password("alice@example.org", "phone", &[7; 32], 1 | 4, None).await.unwrap();
    s.set_totp("alice@example.org", Some(&[9; 20]), true, &[[3; 32].to_vec()]).await.unwrap();
    s.use_totp_step(alice, 12345).await.unwrap();
    s.put_ban(StoredBan {
        network: "192.0.2.7/32".into(),
        until: Some(2_000_000_000),
        reason: "auth failures".into(),
        offence: 2,
        manual: false,
        created: 1_700_000_000,
    })
    .await
    .unwrap();
    s.record_login(alice, "198.51.100.0/32", 1_700_000_000).await.unwrap();
    s.add_alias("postmaster@example.net", "alice@example.org").await.unwrap();
    s.server_secret("scram-decoy", &[5; 32]).await.unwrap();
    s.add_dkim_keys(
        "example.org",
        vec![NewDkimKey {
            selector: "s1".into(),
            algorithm: DkimAlgorithm::Ed25519,
            private_pkcs8: vec![1; 48],
            active_from: 1_700_000_000,
        }],
        None,
    )
    .await
    .unwrap();
    let queued = NewQueued {
        sender: "alice@example.org".into(),
        recipients: vec![NewRecipient { address: "x@elsewhere.example".into(), notify: None, orcpt: None }],
        ret: Some("HDRS".into()),
        envid: None,
        smtputf8: false,
        eight_bit: true,
        requiretls: false,
        content: message("outbound"),
        queued_at: 1_700_000_000,
    };
    s.enqueue(queued, None).await.unwrap();
    let holder = LeaseHolder { node: "old-node".into(), run: "run-1".into() };
    assert_eq!(s.claim_due(&holder, 1_700_000_100, 4_000_000_000, 10).await.unwrap().len(), 1);
}

/// What a client can see of a store, for comparing two of them.
async fn view(s: &dyn Store) -> String {
    let mut out = Vec::new();
    for account in s.accounts().await.unwrap() {
        out.push(format!("{account:?}"));
        let address = &account.address;
        let found = s.account(address).await.unwrap().unwrap();
        out.push(format!("{:?}", s.credentials(address).await.unwrap()));
        out.push(format!("{:?}", s.totp(address).await.unwrap()));
        out.push(format!("{:?}", s.app_passwords(address).await.unwrap()));
        out.push(format!("{:?}", s.subscriptions(found.id).await.unwrap()));
        out.push(format!("{:?}", s.quota(found.id).await.unwrap()));
        for mailbox in s.mailboxes(found.id).await.unwrap() {
            out.push(format!("{mailbox:?}"));
            let index = s.changes_since(mailbox.id, 0).await.unwrap().changed;
            out.push(format!("{index:?}"));
            let uids: Vec<u32> = index.iter().map(|m| m.uid).collect();
            for (uid, raw) in s.message_raws(mailbox.id, &uids).await.unwrap() {
                out.push(format!("{uid} {}", raw.len()));
            }
        }
    }
    out.push(format!("{:?}", s.bans().await.unwrap()));
    out.push(format!("{:?}", s.known_sources(0).await.unwrap()));
    out.push(format!("{:?}", s.aliases(None).await.unwrap()));
    out.push(format!("{:?}", s.dkim_keys(None).await.unwrap()));
    out.push(format!("{:?}", s.server_secret("scram-decoy", &[0; 32]).await.unwrap()));
    out.join("\n")
}

async fn copy(from: &Endpoint, to: &Endpoint) -> Vec<Progress> {
    let mut seen = Vec::new();
    let report = migrate(from, to, false, &mut |p| seen.push(p)).await.unwrap();
    assert_eq!(report.differences(), Vec::<String>::new());
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_to_postgres_and_back_keeps_everything() {
    let Some(cluster) = cluster() else { return };
    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite:{}", dir.path().join("mail.db").display());
    let sqlite = Endpoint::open(&sqlite_url, true).await.unwrap();
    populate(store(&sqlite)).await;
    let before = view(store(&sqlite)).await;

    let pg_url = cluster.fresh_database();
    let pg = Endpoint::open(&pg_url, true).await.unwrap();
    let progress = copy(&sqlite, &pg).await;
    // Progress per table, the messages in batches, each table finished once, in order.
    let messages: Vec<_> = progress.iter().filter(|p| p.table == "messages").collect();
    assert!(messages.len() >= 3, "{messages:?}");
    assert_eq!(messages.last().map(|p| (p.done, p.total)), Some((1203, 1203)));
    let finished: Vec<_> = progress.iter().filter(|p| p.done == p.total).map(|p| p.table).collect();
    let expected: Vec<_> = portcullis_store::transfer::TABLES.iter().map(|t| t.name).collect();
    assert_eq!(finished, expected);

    assert_eq!(view(store(&pg)).await, before);
    let pg_report = pg.check(false).await.unwrap();
    // The shared delivery and the copies still share their bodies.
    // 2 of the shared delivery, 1200 appended, 2 expunged, 3 copied; bodies: 1 + 1200 - 2.
    assert_eq!((pg_report.messages, pg_report.bodies), (1203, 1199));

    // The queued message's lease was cleared: a runner of the new installation claims it now.
    // (Its next attempt became due at the copy: now.)
    let holder = LeaseHolder { node: "new-node".into(), run: "run-1".into() };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert_eq!(store(&pg).claim_due(&holder, now + 1, now + 300, 10).await.unwrap().len(), 1);
    store(&pg).release_claim(1, 1_700_000_100).await.unwrap();

    // New rows get ids past the copied ones, and past the removed account's.
    let carol =
        store(&pg).add_account("carol@example.org", &PasswordSecrets::hash_only("$c"), Quota::Default).await.unwrap();
    assert!(carol > 3, "{carol}");
    store(&pg).remove_account("carol@example.org").await.unwrap();
    let after_pg = view(store(&pg)).await;

    // And back: PostgreSQL to a new SQLite file.
    let back_dir = tempfile::tempdir().unwrap();
    let back = Endpoint::open(&format!("sqlite:{}", back_dir.path().join("mail.db").display()), true).await.unwrap();
    copy(&pg, &back).await;
    assert_eq!(view(store(&back)).await, after_pg);
    let dave =
        store(&back).add_account("dave@example.org", &PasswordSecrets::hash_only("$d"), Quota::Default).await.unwrap();
    assert!(dave > carol, "{dave} after {carol}");
    for end in [&sqlite, &pg, &back] {
        end.close();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_that_holds_anything_is_refused_and_left_alone() {
    let Some(cluster) = cluster() else { return };
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Endpoint::open(&format!("sqlite:{}", dir.path().join("mail.db").display()), true).await.unwrap();
    populate(store(&sqlite)).await;
    let pg = Endpoint::open(&cluster.fresh_database(), true).await.unwrap();
    store(&pg).add_domain("other.example").await.unwrap();
    let e = migrate(&sqlite, &pg, true, &mut |_| {}).await.unwrap_err().to_string();
    assert!(e.contains("not empty") && e.contains("domains has 1 rows"), "{e}");
    assert_eq!(store(&pg).domains().await.unwrap(), vec!["other.example".to_string()]);

    // A missing SQLite source is an error, not a new empty database.
    let missing = format!("sqlite:{}", dir.path().join("nope.db").display());
    let e = Endpoint::open(&missing, false).await.err().unwrap().to_string();
    assert!(e.contains("does not exist"), "{e}");
    assert!(!dir.path().join("nope.db").exists());
    sqlite.close();
    pg.close();
}

/// Columns a copy leaves out on purpose: SQLite's `mailboxes.subscribed` (replaced by the
/// `subscriptions` table in its migration 2, unused since).
const NOT_COPIED_COLUMNS: &[(&str, &str)] = &[("mailboxes", "subscribed")];
/// Tables a copy leaves out on purpose (see `portcullis_store::transfer`): each backend's
/// record of its schema, PostgreSQL's live session slots, maildrop locks, nodes and large
/// signals, and its guard's counts (an hour at most of sending, failures and attempts, made while the
/// servers ran: a copy is made with them stopped, and starts the windows afresh, as a restart
/// of a SQLite node does).
const NOT_COPIED_TABLES: &[&str] = &[
    "schema_migrations",
    "session_slots",
    "maildrop_locks",
    "nodes",
    "signal_bodies",
    "sent_counts",
    "auth_failures",
    "account_failures",
    "auth_attempts",
    "account_attempts",
];

/// (table, column) of `transfer::TABLES`, sorted.
fn transfer_columns() -> Vec<(String, String)> {
    let mut out: Vec<_> = portcullis_store::transfer::TABLES
        .iter()
        .flat_map(|t| t.columns.iter().map(|(c, _)| (t.name.to_string(), c.to_string())))
        .collect();
    out.sort();
    out
}

fn wanted(table: &str, column: &str) -> bool {
    !NOT_COPIED_TABLES.contains(&table) && !NOT_COPIED_COLUMNS.contains(&(table, column))
}

/// A migration that adds a table or a column must add it to the copy too (or say here why
/// not): the list is compared with both backends' schemas as this build makes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_copy_knows_every_table_and_column_of_both_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mail.db");
    Endpoint::open(&format!("sqlite:{}", path.display()), true).await.unwrap().close();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mut sqlite: Vec<(String, String)> = conn
        .prepare(
            "SELECT m.name, p.name FROM sqlite_schema m JOIN pragma_table_info(m.name) p
              WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .filter(|(t, c): &(String, String)| wanted(t, c))
        .collect();
    sqlite.sort();
    assert_eq!(sqlite, transfer_columns(), "SQLite");

    let Some(cluster) = cluster() else { return };
    let url = cluster.fresh_database();
    Endpoint::open(&url, true).await.unwrap().close();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let mut pg: Vec<(String, String)> = client
        .query(
            "SELECT table_name::text, column_name::text FROM information_schema.columns
              WHERE table_schema = current_schema()",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .filter(|(t, c): &(String, String)| wanted(t, c))
        .collect();
    pg.sort();
    assert_eq!(pg, transfer_columns(), "PostgreSQL");
}
