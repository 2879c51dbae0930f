//! Helpers shared by the SQLite backend's own tests (migrations, `check`): a real SQLite file in
//! a temp dir, and a raw connection to look at or damage what is on disk. The tests every
//! backend must pass live in crates/store-backends/tests.
#![allow(dead_code)]

use portcullis_store::*;
pub use portcullis_store_sqlite::SqliteStore;

pub fn open(dir: &tempfile::TempDir, quota: Option<u64>) -> SqliteStore {
    SqliteStore::open(&dir.path().join("mail.db"), quota).unwrap()
}

pub async fn account(store: &SqliteStore, address: &str) -> AccountId {
    let domain = address.rsplit_once('@').unwrap().1;
    match store.add_domain(domain).await {
        Ok(()) | Err(StoreError::DomainExists(_)) => {}
        Err(e) => panic!("{e}"),
    }
    store.add_account(address, &PasswordSecrets::hash_only("$argon2id$fake"), Quota::Default).await.unwrap()
}

pub async fn mailbox(store: &SqliteStore, account: AccountId, name: &str) -> Mailbox {
    store.mailbox(account, name).await.unwrap().unwrap_or_else(|| panic!("no mailbox {name}"))
}

/// A small message whose Date: is 1,700,000,000 seconds after the epoch.
pub fn message(subject: &str) -> Vec<u8> {
    format!(
        "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\nFrom: a@example.org\r\nSubject: {subject}\r\n\r\nHello, {subject}.\r\n"
    )
    .into_bytes()
}

pub fn keywords(list: &[&str]) -> Vec<String> {
    list.iter().map(|k| k.to_string()).collect()
}

pub fn flags(system: u8, list: &[&str]) -> Flags {
    Flags { system, keywords: keywords(list) }
}

/// Appends `n` messages with no flags; returns their UIDs.
pub async fn fill(store: &SqliteStore, mailbox: MailboxId, n: usize) -> Vec<u32> {
    let mut uids = Vec::new();
    for i in 0..n {
        uids.push(
            store.append(mailbox, message(&format!("m{i}")), Flags::default(), 1_700_000_000 + i as i64).await.unwrap(),
        );
    }
    uids
}

/// The keywords SELECT announces for a mailbox (every keyword ever used in it).
pub async fn mailbox_keywords(store: &SqliteStore, account: AccountId, name: &str) -> Vec<String> {
    store.select_mailbox(account, name).await.unwrap().unwrap_or_else(|| panic!("no mailbox {name}")).keywords
}

/// Rows of a table counted through an independent connection: what is on disk.
pub fn count(dir: &tempfile::TempDir, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(dir.path().join("mail.db")).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}
