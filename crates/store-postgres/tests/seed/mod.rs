//! Rows the queue and coordination tests need (a domain, accounts with their INBOX), written
//! with plain SQL on a connection of the test's own: those tests must not depend on the
//! DirectoryStore and MailStore of PostgreSQL, which other files test.
#![allow(dead_code)]

use portcullis_store::AccountId;
use tokio_postgres::{Client, NoTls};

/// A connection of the test's own (the cluster trusts loopback).
pub async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.expect("connect to the test database");
    tokio::spawn(connection);
    client
}

/// An account with an INBOX; its quota in bytes if `quota` says so (else the default).
pub async fn account(db: &Client, address: &str, quota: Option<i64>) -> AccountId {
    let (localpart, domain) = address.rsplit_once('@').expect("an address");
    db.execute("INSERT INTO domains(name, created) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING", &[&domain])
        .await
        .unwrap();
    let account: AccountId = db
        .query_one(
            "INSERT INTO accounts(domain_id, localpart, password_hash, quota, created)
             SELECT id, $2, '$argon2id$fake', $3, 0 FROM domains WHERE name = $1 RETURNING id",
            &[&domain, &localpart, &quota],
        )
        .await
        .unwrap()
        .get(0);
    db.execute("INSERT INTO mailboxes(account_id, name, uidvalidity) VALUES ($1, 'INBOX', 1)", &[&account])
        .await
        .unwrap();
    account
}

/// The INBOX of an account: (id, messages, HIGHESTMODSEQ).
pub async fn inbox(db: &Client, account: AccountId) -> (i64, i64, i64) {
    let row = db
        .query_one(
            "SELECT b.id, (SELECT count(*) FROM messages m WHERE m.mailbox_id = b.id), b.highestmodseq
               FROM mailboxes b WHERE b.account_id = $1 AND b.name = 'INBOX'",
            &[&account],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

/// A small message.
pub fn message(subject: &str) -> Vec<u8> {
    format!(
        "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\nFrom: a@example.org\r\nSubject: {subject}\r\n\r\nHello, {subject}.\r\n"
    )
    .into_bytes()
}
