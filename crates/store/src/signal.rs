//! Signals between nodes (docs/architecture.md §6.3): what one node tells every node, itself
//! included, once the change behind it has committed. Bans, revoked app passwords and changed
//! credentials wake each node's follower of the store at once instead of at its next poll; a
//! session kill, or a request for every node's sessions, asked on one node's admin API reaches
//! the nodes concerned, which answer.
//!
//! The text form ([`NodeSignal::payload`]) is what travels as a PostgreSQL NOTIFY payload; it
//! lives here, beside the type, so that the encoding and the decoding cannot drift apart.
//! Anyone with access to the database may NOTIFY, so [`NodeSignal::parse`] drops whatever is
//! not exactly a signal.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::broadcast;

/// Signals a receiver may fall behind by before it sees `Lagged`, which it must take as "anything
/// may have changed" (the store's follower re-reads everything; a kill it missed is answered by
/// nobody, and the asking node says it was only signalled).
const CAPACITY: usize = 256;

/// One signal, delivered to every node (including the one that published it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeSignal {
    /// A ban was added, changed or lifted: followers read the ban changes.
    BansChanged,
    /// The account (by address) was removed, or given a new password or TOTP: its sessions
    /// logged in under the old credentials must end.
    CredentialsChanged { account: String },
    /// An app password of the account (by address) was revoked.
    AppPasswordRevoked { account: String },
    /// Node `node` should close its session `session`; `by` is the node that asked.
    KillSession { node: String, session: u64, by: String },
    /// Node `node`'s answer to a [`NodeSignal::KillSession`]: whether it had that session.
    SessionKillAnswered { node: String, session: u64, killed: bool },
    /// Node `by` asks every node for its live sessions (the admin API's list of every node);
    /// `request` names the question in the answers.
    ListSessions { request: u64, by: String },
    /// Node `node`'s answer to [`NodeSignal::ListSessions`] `request`: its sessions, as the
    /// admin API's JSON (the store carries it without reading it). Large answers exceed what a
    /// PostgreSQL NOTIFY carries; that backend sends them through a table.
    SessionsListed { request: u64, node: String, sessions: String },
    /// Signals may have been lost (PostgreSQL's LISTEN connection was re-established: what was
    /// sent while it was down never arrives): act as if every kind that can be acted on again
    /// arrived, i.e. read bans, app passwords and credentials now. A kill or a kill's answer
    /// lost in the gap cannot be replayed; its asker reports it as only signalled.
    Resync,
}

impl NodeSignal {
    /// The compact text form: a word, then the fields separated by single spaces (addresses
    /// and node ids hold no spaces).
    pub fn payload(&self) -> String {
        match self {
            NodeSignal::BansChanged => "bans".into(),
            NodeSignal::CredentialsChanged { account } => format!("credentials {account}"),
            NodeSignal::AppPasswordRevoked { account } => format!("app_password {account}"),
            NodeSignal::KillSession { node, session, by } => format!("kill {node} {session} {by}"),
            NodeSignal::SessionKillAnswered { node, session, killed } => {
                format!("killed {node} {session} {}", if *killed { "yes" } else { "no" })
            }
            NodeSignal::ListSessions { request, by } => format!("list_sessions {request} {by}"),
            // The JSON last: it is the rest of the text, spaces and all.
            NodeSignal::SessionsListed { request, node, sessions } => {
                format!("sessions_listed {request} {node} {sessions}")
            }
            NodeSignal::Resync => "resync".into(),
        }
    }

    /// A payload back into a signal; `None` for anything else.
    pub fn parse(text: &str) -> Option<NodeSignal> {
        if let Some(rest) = text.strip_prefix("sessions_listed ") {
            let mut parts = rest.splitn(3, ' ');
            let request = parts.next()?.parse().ok()?;
            let node = parts.next().filter(|n| !n.is_empty())?.to_string();
            let sessions = parts.next().filter(|s| !s.is_empty())?.to_string();
            return Some(NodeSignal::SessionsListed { request, node, sessions });
        }
        let parts: Vec<&str> = text.split(' ').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return None;
        }
        let signal = match parts.as_slice() {
            ["bans"] => NodeSignal::BansChanged,
            ["resync"] => NodeSignal::Resync,
            ["list_sessions", request, by] => {
                NodeSignal::ListSessions { request: request.parse().ok()?, by: by.to_string() }
            }
            ["credentials", account] => NodeSignal::CredentialsChanged { account: account.to_string() },
            ["app_password", account] => NodeSignal::AppPasswordRevoked { account: account.to_string() },
            ["kill", node, session, by] => {
                NodeSignal::KillSession { node: node.to_string(), session: session.parse().ok()?, by: by.to_string() }
            }
            ["killed", node, session, killed] => NodeSignal::SessionKillAnswered {
                node: node.to_string(),
                session: session.parse().ok()?,
                killed: match *killed {
                    "yes" => true,
                    "no" => false,
                    _ => return None,
                },
            },
            _ => return None,
        };
        Some(signal)
    }
}

/// The in-process end of the signals: what a backend hands out from
/// `CoordinationStore::signals` and delivers to (SQLite directly, PostgreSQL from LISTEN).
pub struct Signals {
    sender: broadcast::Sender<NodeSignal>,
}

impl Default for Signals {
    fn default() -> Signals {
        Signals { sender: broadcast::channel(CAPACITY).0 }
    }
}

impl Signals {
    /// A receiver of every signal delivered from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<NodeSignal> {
        self.sender.subscribe()
    }

    /// Never blocks; nobody listening is not an error (the CLI process has no follower).
    pub fn deliver(&self, signal: NodeSignal) {
        let _ = self.sender.send(signal);
    }
}

/// An id for a node that opens a store now: host name, process id and a per-process counter,
/// so that it is unique among live nodes (two handles in one process are two nodes, as tests
/// need), readable by an operator (`SELECT node FROM session_slots`), and free of spaces (it
/// travels in [`NodeSignal::payload`]).
pub fn new_node_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().replace(|c: char| c.is_whitespace() || c == '/', "-"))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into());
    format!("{host}:{}:{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_anything_else_is_dropped() {
        let signals = [
            NodeSignal::BansChanged,
            NodeSignal::CredentialsChanged { account: "a@example.org".into() },
            NodeSignal::AppPasswordRevoked { account: "a@example.org".into() },
            NodeSignal::KillSession { node: "h:1:2".into(), session: 42, by: "g:3:1".into() },
            NodeSignal::SessionKillAnswered { node: "h:1:2".into(), session: 42, killed: true },
            NodeSignal::SessionKillAnswered { node: "h:1:2".into(), session: 7, killed: false },
            NodeSignal::ListSessions { request: 1 << 60, by: "g:3:1".into() },
            NodeSignal::SessionsListed {
                request: 9,
                node: "h:1:2".into(),
                sessions: r#"[{"tls": "TLSv1.3 TLS13_AES_256_GCM_SHA384"}]"#.into(),
            },
            NodeSignal::SessionsListed { request: 9, node: "h:1:2".into(), sessions: "[]".into() },
            NodeSignal::Resync,
        ];
        for signal in signals {
            assert_eq!(NodeSignal::parse(&signal.payload()), Some(signal.clone()), "{signal:?}");
        }
        assert_eq!(NodeSignal::KillSession { node: "n".into(), session: 5, by: "m".into() }.payload(), "kill n 5 m");
        for bad in [
            "",
            "bans ",
            " bans",
            "bans x",
            "resync now",
            "list_sessions 1",
            "list_sessions x g",
            "list_sessions 1 g h",
            "sessions_listed 1 h",
            "sessions_listed 1 h ",
            "sessions_listed x h []",
            "sessions_listed 1  []",
            "credentials",
            "credentials  a@x",
            "kill n 5",
            "kill n x m",
            "kill n -1 m",
            "kill n 5 m extra",
            "killed n 5 maybe",
            "BANS",
            "7 42 1",
        ] {
            assert_eq!(NodeSignal::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn node_ids_are_unique_and_have_no_spaces() {
        let (a, b) = (new_node_id(), new_node_id());
        assert_ne!(a, b);
        assert!(!a.contains(' ') && a.contains(&format!(":{}:", std::process::id())));
    }

    #[test]
    fn every_subscriber_hears_a_delivered_signal() {
        let signals = Signals::default();
        signals.deliver(NodeSignal::BansChanged); // nobody listens: not an error
        let (mut one, mut two) = (signals.subscribe(), signals.subscribe());
        signals.deliver(NodeSignal::BansChanged);
        assert_eq!(one.try_recv().unwrap(), NodeSignal::BansChanged);
        assert_eq!(two.try_recv().unwrap(), NodeSignal::BansChanged);
        assert!(one.try_recv().is_err());
    }
}
