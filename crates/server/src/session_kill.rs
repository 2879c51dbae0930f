//! Closing a session wherever it lives (issue 17): the admin API of any node may close a
//! session of any node sharing the store. A session is named `NODE:ID` across nodes (the node
//! id of the store handle, then the connection number); a kill for another node travels as
//! [`NodeSignal::KillSession`], and the node that holds the session (its store follower, see
//! `follow_store`) closes it and answers with [`NodeSignal::SessionKillAnswered`].
//!
//! The decision to close is the admin API's (an authenticated operator asked); the node that
//! closes only carries it out, as it would for a kill on its own API, and reports it as a
//! `session_killed` event naming the node that asked.

use std::time::Duration;

use portcullis_events::Event;
use portcullis_store::NodeSignal;
use tokio::sync::broadcast::error::RecvError;

use crate::state::Shared;

/// How long the asking node waits for the answer before it says the kill was only signalled
/// (the other node is down, slow, or its LISTEN connection is being re-established).
pub const ANSWER_WAIT: Duration = Duration::from_secs(2);

/// What became of a kill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillOutcome {
    /// The session was live and is being closed.
    Killed,
    /// The node has no such session (it ended, or never was).
    NoSuchSession,
    /// Signalled to another node, which did not answer within [`ANSWER_WAIT`].
    Signalled,
}

/// A session's name across nodes: `NODE:ID` (the node id itself holds colons, the connection
/// number never does), or a bare `ID` for this node's. `None` when it is neither.
pub fn parse_session_name(name: &str) -> Option<(Option<&str>, u64)> {
    match name.rsplit_once(':') {
        Some((node, id)) if !node.is_empty() && !node.contains(char::is_whitespace) => {
            Some((Some(node), id.parse().ok()?))
        }
        Some(_) => None,
        None => Some((None, name.parse().ok()?)),
    }
}

/// The name of this node's session `id` across nodes.
pub fn session_name(node: &str, id: u64) -> String {
    format!("{node}:{id}")
}

/// Closes session `session` of node `node` (this one's at once; another's through the store).
pub async fn kill(shared: &Shared, node: &str, session: u64) -> Result<KillOutcome, portcullis_store::StoreError> {
    if node == shared.store.node() {
        return Ok(if shared.sessions.kill(session) { KillOutcome::Killed } else { KillOutcome::NoSuchSession });
    }
    // Subscribed before publishing, so that the answer cannot come first.
    let mut answers = shared.store.signals();
    let by = shared.store.node().to_string();
    shared.store.publish(NodeSignal::KillSession { node: node.to_string(), session, by }).await?;
    let wait = async {
        loop {
            match answers.recv().await {
                Ok(NodeSignal::SessionKillAnswered { node: from, session: answered, killed })
                    if from == node && answered == session =>
                {
                    return if killed { KillOutcome::Killed } else { KillOutcome::NoSuchSession };
                }
                Ok(_) | Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return KillOutcome::Signalled,
            }
        }
    };
    Ok(tokio::time::timeout(ANSWER_WAIT, wait).await.unwrap_or(KillOutcome::Signalled))
}

/// Carries out another node's [`NodeSignal::KillSession`] for this node's session `session`,
/// and answers it.
pub async fn answer(shared: &Shared, session: u64, by: String) {
    let killed = shared.sessions.kill(session);
    if killed {
        shared.events.emit(Event::SessionKilled { conn: session, by_node: by });
    }
    let node = shared.store.node().to_string();
    if let Err(e) = shared.store.publish(NodeSignal::SessionKillAnswered { node, session, killed }).await {
        let what = format!("answering another node's session kill failed: {e}");
        shared.events.emit(Event::InternalError { conn: None, what });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_carry_the_node_and_bare_numbers_are_this_nodes() {
        assert_eq!(parse_session_name("42"), Some((None, 42)));
        assert_eq!(parse_session_name("mail1:1234:1:42"), Some((Some("mail1:1234:1"), 42)));
        assert_eq!(parse_session_name(&session_name("h:1:2", 7)), Some((Some("h:1:2"), 7)));
        for bad in ["", "x", ":42", "node:", "node:x", "node:-1", "a b:1", "42:"] {
            assert_eq!(parse_session_name(bad), None, "{bad:?}");
        }
    }
}
