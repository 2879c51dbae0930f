//! The live sessions of every node (issue 17): `GET /api/v1/sessions` on any node lists the
//! sessions of every node sharing the store, as an operator behind a balancer needs. Sessions
//! live in each node's memory, so the asking node publishes [`NodeSignal::ListSessions`],
//! every other live node (the store knows which: `CoordinationStore::live_nodes`) answers with
//! [`NodeSignal::SessionsListed`] carrying its list, and the asker waits for every answer
//! or [`ANSWER_WAIT`], whichever comes first. A node that did not answer in time is named in
//! `nodes_missing` and the list is `partial`: it is down (a dead node counts as live until its
//! row in the store expires), slow, or its LISTEN connection is being re-established.
//!
//! With one node (SQLite, or a PostgreSQL node alone) nothing is asked: the list is local.
//! The one shape of a listed session, [`SessionView`], is here, so that a node's own sessions
//! and another node's answer read alike.

use std::collections::BTreeSet;
use std::time::Duration;

use portcullis_events::Event;
use portcullis_store::{NodeSignal, StoreError};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

use crate::session_kill;
use crate::sessions::SessionInfo;
use crate::state::Shared;

/// How long the asking node waits for the other nodes' answers.
pub const ANSWER_WAIT: Duration = Duration::from_secs(1);

/// A live session, with the names that reach it from any node.
#[derive(Serialize)]
struct SessionView<'a> {
    /// `NODE:ID`: what `DELETE /api/v1/sessions/{id}` takes on any node sharing the store.
    global_id: String,
    node: &'a str,
    #[serde(flatten)]
    info: SessionInfo,
}

/// What `GET /api/v1/sessions` answers.
#[derive(Debug, Serialize, PartialEq)]
pub struct SessionList {
    /// Every listed session, node by node (this node's first), each node's oldest first.
    pub sessions: Vec<Value>,
    /// The nodes whose sessions are listed.
    pub nodes: Vec<String>,
    /// Live nodes that did not answer within [`ANSWER_WAIT`].
    pub nodes_missing: Vec<String>,
    /// Whether some live node's sessions are missing.
    pub partial: bool,
}

/// This node's sessions, as JSON values.
fn local_sessions(shared: &Shared) -> Vec<Value> {
    let node = shared.store.node();
    shared
        .sessions
        .list()
        .into_iter()
        .map(|info| {
            let view = SessionView { global_id: session_kill::session_name(node, info.id), node, info };
            serde_json::to_value(view).unwrap_or(Value::Null)
        })
        .collect()
}

/// This node's sessions only.
pub fn local(shared: &Shared) -> SessionList {
    SessionList {
        sessions: local_sessions(shared),
        nodes: vec![shared.store.node().to_string()],
        nodes_missing: Vec::new(),
        partial: false,
    }
}

/// Every live node's sessions, waiting at most [`ANSWER_WAIT`] for the others' answers.
pub async fn everywhere(shared: &Shared) -> Result<SessionList, StoreError> {
    let me = shared.store.node().to_string();
    let mut waiting: BTreeSet<String> = shared.store.live_nodes().await?.into_iter().filter(|n| *n != me).collect();
    if waiting.is_empty() {
        return Ok(local(shared));
    }
    // Subscribed before asking, so that no answer can come first.
    let mut answers = shared.store.signals();
    let request = rand::random::<u64>();
    shared.store.publish(NodeSignal::ListSessions { request, by: me.clone() }).await?;
    let mut list = local(shared);
    // Answers that were not a list (anyone with access to the database may NOTIFY): those
    // nodes' sessions stay missing.
    let mut unreadable = BTreeSet::new();
    let collect = async {
        while !waiting.is_empty() {
            match answers.recv().await {
                Ok(NodeSignal::SessionsListed { request: answered, node, sessions }) if answered == request => {
                    // A node that started since the live nodes were read answers too.
                    waiting.remove(&node);
                    if list.nodes.contains(&node) {
                        continue;
                    }
                    match serde_json::from_str::<Vec<Value>>(&sessions) {
                        Ok(theirs) => {
                            list.sessions.extend(theirs);
                            list.nodes.push(node);
                        }
                        Err(_) => {
                            unreadable.insert(node);
                        }
                    }
                }
                Ok(_) | Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            }
        }
    };
    let _ = tokio::time::timeout(ANSWER_WAIT, collect).await;
    waiting.extend(unreadable.into_iter().filter(|n| !list.nodes.contains(n)));
    list.partial = !waiting.is_empty();
    list.nodes_missing = waiting.into_iter().collect();
    Ok(list)
}

/// Answers another node's [`NodeSignal::ListSessions`] with this node's sessions.
pub async fn answer(shared: &Shared, request: u64) {
    let sessions = serde_json::to_string(&local_sessions(shared)).unwrap_or_else(|_| "[]".into());
    let node = shared.store.node().to_string();
    if let Err(e) = shared.store.publish(NodeSignal::SessionsListed { request, node, sessions }).await {
        let what = format!("answering another node's request for its sessions failed: {e}");
        shared.events.emit(Event::InternalError { conn: None, what });
    }
}
