//! Flags and keywords: STORE, and the keywords a mailbox knows (FLAGS, PERMANENTFLAGS).
//! Keywords compare case-insensitively: `mailbox_keywords` is unique on `lower(keyword)`.
//!
//! A STORE naming no keyword, nearly every one a client sends (`\Seen` as it reads, `\Deleted`
//! before EXPUNGE), is one call of the SQL function `store_system_flags` (schema migration 2):
//! one statement instead of six (issue 17). One naming a keyword may have to add it to the
//! mailbox's list and match its spelling there, and takes the statements of [`store_flags`].

use deadpool_postgres::GenericClient;
use portcullis_store::*;
use portcullis_store::{decode_keywords, encode_keywords, is_valid_keyword, sort_keywords};
use tokio_postgres::Row;

use super::locks::allocate;
use super::Uids;
use crate::Db;

/// Whether a STORE names a keyword the store can keep: if not, [`store_system_flags`] does it.
pub(super) fn names_keywords(flags: &Flags) -> bool {
    flags.keywords.iter().any(|k| is_valid_keyword(k))
}

/// STORE of system flags only (`flags.keywords` holds no valid keyword; `Replace` then clears
/// the keywords) in one statement, an implicit transaction: the SQL function
/// `store_system_flags`, which keeps the guarantees of [`store_flags`]:
/// - The MODSEQ comes from `UPDATE mailboxes … RETURNING`, whose row lock is the mailbox lock
///   (see the `mail` module), and the messages are read and changed by a later statement of
///   the function, with a snapshot taken under that lock: two nodes storing at once each see
///   the other's result. Every changed message gets that one MODSEQ.
/// - UNCHANGEDSINCE (RFC 7162 §3.1.3) is decided under the lock, on that same snapshot.
/// - The NOTIFY for the other nodes is sent by the function, so PostgreSQL delivers it at
///   commit only; this node's sessions are told here, once the statement (and so its commit)
///   has returned, as `commit_announcing` does.
///
/// First, though, the function reads the listed messages without any lock, and if none of
/// them would change (or every one that would is excluded by UNCHANGEDSINCE) it returns at
/// once, having written nothing: no MODSEQ taken, HIGHESTMODSEQ unmoved, no WAL to flush. That
/// no-op STORE is serialized at the snapshot of that read, and this is correct because:
/// - what a STORE does to a message depends only on that message's flags and MODSEQ, and the
///   read sees them all in one snapshot, in which every flag change is either wholly
///   committed (the messages and their mailbox's HIGHESTMODSEQ together) or not at all;
/// - the snapshot is taken after the call began, so it includes every change that any
///   session (this client's own included) was told had succeeded before this STORE was sent;
///   a change not in it had not committed, so it is ordered after this STORE, on whose
///   outcome (nothing) it cannot depend;
/// - a STORE that changes nothing has no effect other than its answer (the UIDs excluded by
///   UNCHANGEDSINCE, read from the same snapshot), so running it as if at that instant is
///   indistinguishable from running it under the lock, as [`store_flags`] does, which would
///   only have made it wait for writers that it then orders itself after.
///
/// If something would change but, once the lock is taken, nothing does (another STORE got
/// there first), the function gives the MODSEQ back before commit, still under the lock, so
/// nobody saw it.
///
/// Returns the update and the change to announce to this node's sessions, `None` if nothing
/// changed.
pub(super) async fn store_system_flags(
    db: &impl GenericClient,
    mailbox: MailboxId,
    uids: &[i64],
    op: FlagOp,
    system: u8,
    unchanged_since: Option<u64>,
    (channel, node): (&str, &str),
) -> Result<(FlagsUpdate, Option<MailboxChange>), StoreError> {
    if uids.is_empty() {
        return Ok((FlagsUpdate::default(), None));
    }
    let op = match op {
        FlagOp::Add => "add",
        FlagOp::Remove => "remove",
        FlagOp::Replace => "replace",
    };
    // A MODSEQ is below 2^63 (a BIGINT); anything above excludes nothing.
    let since = unchanged_since.and_then(|s| i64::try_from(s).ok());
    let stmt = db.prepare_cached("SELECT * FROM store_system_flags($1, $2, $3, $4, $5, $6, $7)").await.db()?;
    let row = db
        .query_one(&stmt, &[&mailbox, &uids, &op, &i32::from(system & Flags::ALL), &since, &channel, &node])
        .await
        .db()?;
    let to_uid = |uid: i64| uid as u32;
    let modified: Option<Vec<i64>> = row.get("modified_uids");
    let mut update =
        FlagsUpdate { updated: Vec::new(), modified: modified.unwrap_or_default().into_iter().map(to_uid).collect() };
    let (Some(account), Some(modseq)) = (row.get::<_, Option<i64>>("owner"), row.get::<_, Option<i64>>("new_modseq"))
    else {
        return Ok((update, None));
    };
    let changed: Vec<i64> = row.get("updated_uids");
    let systems: Vec<i32> = row.get("updated_flags");
    let keywords: Vec<String> = row.get("updated_keywords");
    let modseq = modseq as u64;
    update.updated = changed
        .into_iter()
        .zip(systems)
        .zip(keywords)
        .map(|((uid, system), keywords)| MessageIndex {
            uid: to_uid(uid),
            flags: Flags { system: system as u8, keywords: decode_keywords(&keywords) },
            modseq,
        })
        .collect();
    Ok((update, Some(MailboxChange { account, mailbox, modseq })))
}

/// A `MessageIndex` from columns (uid, flags, keywords, modseq) starting at `at`.
pub(super) fn index_from_row(row: &Row, at: usize) -> MessageIndex {
    MessageIndex {
        uid: row.get::<_, i64>(at) as u32,
        flags: Flags { system: row.get::<_, i32>(at + 1) as u8, keywords: decode_keywords(row.get(at + 2)) },
        modseq: row.get::<_, i64>(at + 3) as u64,
    }
}

/// The keywords in the spelling the mailbox first saw them in, sorted, each once; invalid
/// ones dropped. With `register`, new ones join the mailbox's list: the caller holds the
/// mailbox row's lock (see the `mail` module), so no other writer adds the same one meanwhile.
pub(super) async fn canonical_keywords(
    db: &impl GenericClient,
    mailbox: MailboxId,
    keywords: &[String],
    register: bool,
) -> Result<Vec<String>, StoreError> {
    let wanted: Vec<&String> = keywords.iter().filter(|k| is_valid_keyword(k)).collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let known = db
        .prepare_cached("SELECT keyword FROM mailbox_keywords WHERE mailbox_id = $1 AND lower(keyword) = ANY($2)")
        .await
        .db()?;
    let lowered: Vec<String> = wanted.iter().map(|k| k.to_ascii_lowercase()).collect();
    let spellings: Vec<String> = db.query(&known, &[&mailbox, &lowered]).await.db()?.iter().map(|r| r.get(0)).collect();
    let add = db
        .prepare_cached(
            "INSERT INTO mailbox_keywords(mailbox_id, keyword) VALUES ($1, $2)
             ON CONFLICT (mailbox_id, lower(keyword)) DO NOTHING",
        )
        .await
        .db()?;
    let mut out = Vec::with_capacity(wanted.len());
    let mut added: Vec<&String> = Vec::new();
    for keyword in wanted {
        match spellings.iter().find(|s| s.eq_ignore_ascii_case(keyword)) {
            Some(spelling) => out.push(spelling.clone()),
            None => {
                // A keyword asked for twice in two spellings is added once (the first).
                if register && !added.iter().any(|a| a.eq_ignore_ascii_case(keyword)) {
                    db.execute(&add, &[&mailbox, keyword]).await.db()?;
                    added.push(keyword);
                }
                out.push(keyword.clone());
            }
        }
    }
    sort_keywords(&mut out);
    Ok(out)
}

/// Every keyword ever used in the mailbox, in SQLite's NOCASE order (ASCII case folded,
/// then bytewise).
pub(super) async fn mailbox_keywords(db: &impl GenericClient, mailbox: MailboxId) -> Result<Vec<String>, StoreError> {
    let stmt = db
        .prepare_cached(
            "SELECT keyword FROM mailbox_keywords WHERE mailbox_id = $1 ORDER BY lower(keyword) COLLATE \"C\"",
        )
        .await
        .db()?;
    Ok(db.query(&stmt, &[&mailbox]).await.db()?.iter().map(|r| r.get(0)).collect())
}

/// STORE: one new MODSEQ for all the messages this changes, none if none changes.
///
/// The MODSEQ is taken first: its `UPDATE` of the mailbox row is also the mailbox lock that
/// STORE needs before reading the messages (see the `mail` module), one round trip instead of
/// a lock and a later allocation. The messages are read by the next statement, under that
/// lock, so two nodes storing at once each see the other's result, never a flag set from
/// before it. When nothing changes, HIGHESTMODSEQ must not move (as on SQLite): the answer is
/// `None`, for the caller to roll back, unless the command named keywords (new ones join the
/// mailbox's list even so); then the MODSEQ is given back before commit, still under the lock,
/// so nobody saw it.
pub(super) async fn store_flags(
    db: &impl GenericClient,
    mailbox: MailboxId,
    uids: &Uids,
    op: FlagOp,
    flags: &Flags,
    unchanged_since: Option<u64>,
) -> Result<(FlagsUpdate, Option<Vec<MailboxChange>>), StoreError> {
    if uids.is_empty() {
        return Ok((FlagsUpdate::default(), None));
    }
    let Some(at) = allocate(db, mailbox, 0).await? else {
        // A mailbox deleted meanwhile has no messages to change.
        return Ok((FlagsUpdate::default(), None));
    };
    let change = Flags {
        system: flags.system & Flags::ALL,
        keywords: canonical_keywords(db, mailbox, &flags.keywords, op != FlagOp::Remove).await?,
    };
    let (sql, params) = uids.query(
        "SELECT uid, flags, keywords, modseq, id FROM messages WHERE mailbox_id = $1 AND {uids} ORDER BY uid",
        &mailbox,
    );
    let stmt = db.prepare_cached(&sql).await.db()?;
    let current = db.query(&stmt, &params).await.db()?;
    let mut result = FlagsUpdate::default();
    let (mut ids, mut systems, mut keywords) = (Vec::new(), Vec::new(), Vec::new());
    for row in &current {
        let message = index_from_row(row, 0);
        if unchanged_since.is_some_and(|since| message.modseq > since) {
            result.modified.push(message.uid);
            continue;
        }
        let next = message.flags.apply(op, &change);
        if next == message.flags {
            continue;
        }
        ids.push(row.get::<_, i64>(4));
        systems.push(i32::from(next.system));
        keywords.push(encode_keywords(&next.keywords));
        result.updated.push(MessageIndex { uid: message.uid, flags: next, modseq: at.change.modseq });
    }
    if ids.is_empty() {
        if !registers_keywords(op, flags) {
            return Ok((result, None));
        }
        let give_back =
            db.prepare_cached("UPDATE mailboxes SET highestmodseq = highestmodseq - 1 WHERE id = $1").await.db()?;
        db.execute(&give_back, &[&mailbox]).await.db()?;
        return Ok((result, Some(Vec::new())));
    }
    let update = db
        .prepare_cached(
            "UPDATE messages m SET flags = u.flags, keywords = u.keywords, modseq = $4
               FROM unnest($1::bigint[], $2::integer[], $3::text[]) AS u(id, flags, keywords)
              WHERE m.id = u.id",
        )
        .await
        .db()?;
    db.execute(&update, &[&ids, &systems, &keywords, &(at.change.modseq as i64)]).await.db()?;
    Ok((result, Some(vec![at.change])))
}

/// Whether a STORE may add keywords to the mailbox's list ([`canonical_keywords`] with
/// `register`): it names a valid one and does not remove.
fn registers_keywords(op: FlagOp, flags: &Flags) -> bool {
    op != FlagOp::Remove && names_keywords(flags)
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;
    use std::time::Duration;

    use portcullis_store::*;
    use portcullis_testpg::PgCluster;
    use tokio::sync::mpsc::UnboundedReceiver;
    use tokio_postgres::{AsyncMessage, NoTls};

    use crate::coordination::listen;
    use crate::PgStore;

    /// One cluster for these tests (stopped when the binary ends, see `portcullis_testpg`).
    fn cluster() -> Option<&'static PgCluster> {
        static CLUSTER: OnceLock<Option<PgCluster>> = OnceLock::new();
        CLUSTER.get_or_init(PgCluster::start).as_ref()
    }

    /// A store on a fresh database, with an account whose INBOX holds one message; its URL,
    /// the account and the INBOX. `None` without PostgreSQL.
    async fn one_message() -> Option<(String, PgStore, AccountId, MailboxId)> {
        let url = cluster()?.fresh_database();
        let store = PgStore::connect(&url, None).await.unwrap();
        store.add_domain("example.org").await.unwrap();
        let secrets = PasswordSecrets::hash_only("$argon2id$fake");
        let account = store.add_account("a@example.org", &secrets, Quota::Default).await.unwrap();
        let inbox = store.mailbox(account, "INBOX").await.unwrap().unwrap().id;
        store.append(inbox, b"Subject: one\r\n\r\nbody\r\n".to_vec(), Flags::default(), 0).await.unwrap();
        Some((url, store, account, inbox))
    }

    /// A plain connection whose notifications and notices come out of the receiver.
    async fn connect(url: &str) -> (tokio_postgres::Client, UnboundedReceiver<AsyncMessage>) {
        let (client, mut connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(Ok(message)) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                if tx.send(message).is_err() {
                    break;
                }
            }
        });
        (client, rx)
    }

    #[tokio::test]
    async fn the_function_s_notify_payload_is_the_one_listen_builds_and_parses() {
        let Some((url, store, account, inbox)) = one_message().await else { return };
        let (client, mut heard) = connect(&url).await;
        client.batch_execute(&format!("LISTEN {}", listen::CHANNEL)).await.unwrap();
        let update = store.store_flags(inbox, &[1], FlagOp::Add, &Flags::system(Flags::SEEN), None).await.unwrap();
        let change = MailboxChange { account, mailbox: inbox, modseq: update.updated[0].modseq };
        let notification = loop {
            match tokio::time::timeout(Duration::from_secs(10), heard.recv()).await.expect("a NOTIFY").unwrap() {
                AsyncMessage::Notification(n) => break n,
                _ => continue,
            }
        };
        let node = store.coordination.node();
        assert_eq!(notification.channel(), listen::CHANNEL);
        assert_eq!(notification.payload(), listen::payload(&change, node));
        assert_eq!(listen::parse_payload(notification.payload()), Some((change, node)));
    }

    /// The plans PostgreSQL runs for the function's statements (auto_explain, with its nested
    /// statements, sent to the client as notices), on a mailbox of 5,000 messages among 2,000
    /// mailboxes, as generic
    /// plans, the ones a session's cached plans settle on: every read and update of `messages`
    /// goes through the `(mailbox_id, uid)` index, the mailbox row through its key.
    #[tokio::test]
    async fn the_function_s_statements_use_the_uid_index() {
        let Some((url, _store, _, inbox)) = one_message().await else { return };
        let (client, mut notices) = connect(&url).await;
        let copies = "INSERT INTO messages(mailbox_id, uid, blob_id, size, internal_date, modseq)
                      SELECT mailbox_id, g, blob_id, size, internal_date, modseq
                        FROM messages, generate_series(2, 5000) AS g WHERE mailbox_id = $1 AND uid = 1";
        client.execute(copies, &[&inbox]).await.unwrap();
        client.execute("UPDATE mailboxes SET uidnext = 5001 WHERE id = $1", &[&inbox]).await.unwrap();
        // And mailboxes enough that finding one by a scan would cost more than by its key.
        let boxes = "INSERT INTO mailboxes(account_id, name, uidvalidity)
                     SELECT account_id, 'box' || g, uidvalidity
                       FROM mailboxes, generate_series(1, 2000) AS g WHERE id = $1";
        client.execute(boxes, &[&inbox]).await.unwrap();
        client
            .batch_execute(
                "ANALYZE messages; ANALYZE mailboxes;
                 LOAD 'auto_explain';
                 SET auto_explain.log_min_duration = 0;
                 SET auto_explain.log_nested_statements = on;
                 SET auto_explain.log_level = notice;
                 SET client_min_messages = notice;
                 SET plan_cache_mode = force_generic_plan;",
            )
            .await
            .unwrap();
        let call = |op: &str, since: &str| {
            format!("SELECT * FROM store_system_flags({inbox}, '{{1,2500,5000}}', '{op}', 1, {since}, 'c', 'n')")
        };
        // Changes three messages; changes nothing; changes them back under UNCHANGEDSINCE.
        for sql in [call("add", "NULL"), call("add", "NULL"), call("remove", "1000000")] {
            client.batch_execute(&sql).await.unwrap();
        }
        client.batch_execute("SELECT 1").await.unwrap(); // Every notice before this answer.
        let mut plans = Vec::new();
        while let Ok(message) = notices.try_recv() {
            if let AsyncMessage::Notice(notice) = message {
                plans.push(notice.message().to_string());
            }
        }
        let on_messages: Vec<&String> = plans.iter().filter(|p| p.contains("FROM messages m")).collect();
        // The check three times, the change twice.
        assert_eq!(on_messages.len(), 5, "{plans:#?}");
        for plan in &on_messages {
            assert!(plan.contains("messages_mailbox_id_uid_key"), "{plan}");
        }
        assert_eq!(
            plans.iter().filter(|p| p.contains("UPDATE mailboxes") && p.contains("mailboxes_pkey")).count(),
            2,
            "{plans:#?}"
        );
        assert!(plans.iter().all(|p| !p.contains("Seq Scan")), "{plans:#?}");
    }
}
