//! Sessions opened with an app password, so that revoking it (from the CLI, into the store)
//! closes them: the store is asked every second which of their app passwords no longer open
//! anything (revoked, expired, or gone with the account), and those sessions are cut.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio_util::sync::CancellationToken;

struct Entry {
    app_password: i64,
    name: String,
    account: String,
    close: CancellationToken,
}

/// Live sessions by connection id.
#[derive(Default)]
pub struct AppSessions {
    live: Mutex<HashMap<u64, Entry>>,
}

/// A session to close: its connection, account and app password name.
pub struct Closed {
    pub conn: u64,
    pub account: String,
    pub app_password: String,
}

impl AppSessions {
    pub fn opened(&self, conn: u64, app_password: i64, name: &str, account: &str, close: CancellationToken) {
        let entry = Entry { app_password, name: name.to_string(), account: account.to_string(), close };
        self.lock().insert(conn, entry);
    }

    pub fn ended(&self, conn: u64) {
        self.lock().remove(&conn);
    }

    /// The app passwords in use, each once.
    pub fn in_use(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.lock().values().map(|e| e.app_password).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Closes every session opened with one of `unusable`.
    pub fn close(&self, unusable: &[i64]) -> Vec<Closed> {
        let mut live = self.lock();
        let doomed: Vec<u64> =
            live.iter().filter(|(_, e)| unusable.contains(&e.app_password)).map(|(conn, _)| *conn).collect();
        doomed
            .into_iter()
            .filter_map(|conn| live.remove(&conn).map(|e| (conn, e)))
            .map(|(conn, e)| {
                e.close.cancel();
                Closed { conn, account: e.account, app_password: e.name }
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sessions_of_unusable_app_passwords_are_closed() {
        let sessions = AppSessions::default();
        let (phone, laptop, other) = (CancellationToken::new(), CancellationToken::new(), CancellationToken::new());
        sessions.opened(1, 10, "phone", "alice@example.org", phone.clone());
        sessions.opened(2, 11, "laptop", "alice@example.org", laptop.clone());
        sessions.opened(3, 10, "phone", "alice@example.org", other.clone());
        assert_eq!(sessions.in_use(), vec![10, 11]);
        sessions.ended(2);
        assert_eq!(sessions.in_use(), vec![10]);
        let mut closed: Vec<u64> = sessions.close(&[10]).iter().map(|c| c.conn).collect();
        closed.sort_unstable();
        assert_eq!(closed, vec![1, 3]);
        assert!(phone.is_cancelled() && other.is_cancelled() && !laptop.is_cancelled());
        assert!(sessions.in_use().is_empty());
    }
}
