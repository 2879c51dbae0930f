//! The IMAP driver: frames input into commands, runs them in a
//! [`portcullis_proto_imap::Session`] (whose environment is the store and the login pipeline),
//! and carries mailbox-change notifications to it (at the next command, or at once while the
//! client IDLEs).

use async_trait::async_trait;
use portcullis_auth::AuthError;
use portcullis_events::{CloseReason, Event};
use portcullis_proto_imap::{
    AuthFailure, Config, Environment, Fact, Frame, Framer, Limits, Principal, Progress, Session,
};
use portcullis_sasl::{Attempt, ScramKeys};
use portcullis_store::{MailboxChange, Store};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::broadcast::{self, error::TryRecvError};

use crate::connection::{Connection, Input};
use crate::login::{authenticate, scram_keys};
use crate::sessions::Who;
use crate::socket::Stream;
use crate::state::Shared;

/// Longest command, literals included (except APPEND's message, bounded by the message size).
const MAX_COMMAND: usize = 64 * 1024;

struct Env<'a> {
    shared: &'a Shared,
    who: Who,
}

#[async_trait]
impl Environment for Env<'_> {
    fn store(&self) -> &dyn Store {
        &*self.shared.store
    }

    async fn authenticate(&self, mechanism: &'static str, attempt: Attempt) -> Result<Principal, AuthFailure> {
        match authenticate(self.shared, self.who, mechanism, attempt).await {
            Ok(p) => Ok(Principal { account: p.account, address: p.address }),
            Err(AuthError::Refused(_)) => Err(AuthFailure::InvalidCredentials),
            Err(AuthError::Unavailable | AuthError::Busy) => Err(AuthFailure::Temporary),
        }
    }

    async fn scram_keys(&self, username: &str) -> ScramKeys {
        scram_keys(self.shared, self.who, username).await
    }

    fn report(&self, fact: Fact) {
        let what = match fact {
            Fact::CommandTooLong => "command too long",
            Fact::LiteralTooBig => "literal too big",
            Fact::TooManyErrors => "too many errors",
            Fact::TooManyCommands => "too many commands",
            Fact::TooManyAuthFailures => "too many authentication failures",
            Fact::TooManySessions => "too many sessions for the account",
        };
        self.shared.events.emit(Event::ProtocolViolation {
            conn: self.who.conn,
            listener: self.who.listener,
            peer: self.who.peer,
            what: what.into(),
        });
    }

    /// On tokio's blocking threads: the runtime's workers serve every connection, and a long
    /// MIME parse or LIST match on one of them would stall the sessions queued behind it.
    async fn offload(&self, work: Box<dyn FnOnce() + Send>) {
        let _ = tokio::task::spawn_blocking(work).await;
    }
}

pub async fn run(shared: &Shared, conn: &mut Connection, tcp: TcpStream) -> CloseReason {
    let Ok(mut stream) = conn.handshake(shared, tcp).await else {
        return CloseReason::TlsFailed;
    };
    let limits = &shared.config.limits;
    let env = Env { shared, who: conn.who() };
    let mut session = Session::new(
        Config {
            hostname: shared.config.hostname.clone(),
            max_message_size: limits.max_message_size,
            max_auth_failures: limits.max_auth_failures,
            max_sessions_per_account: limits.max_imap_sessions_per_account,
            max_commands: limits.max_commands,
            max_errors: portcullis_guard::MAX_ERRORS,
        },
        stream.channel_binding(),
    );
    let mut framer = Framer::new(Limits { max_command: MAX_COMMAND, max_append: limits.max_message_size });
    // Subscribed once the client has logged in: changes to its account's mailboxes.
    let mut changes: Option<broadcast::Receiver<MailboxChange>> = None;
    let mut progress = Progress::Ready;

    loop {
        let output = session.take_output();
        if conn.send(&mut stream, &output).await.is_err() {
            return CloseReason::IoError;
        }
        if changes.is_none() {
            if let Some(principal) = session.principal() {
                changes = Some(shared.store.watch(principal.account));
                framer.logged_in();
                conn.logged_in();
            }
        }
        if let Some(receiver) = changes.as_mut() {
            drain(receiver, &mut session);
        }
        // Reads below happen only when the framer has nothing whole: bound an unfinished
        // command's time.
        conn.mid_command(framer.mid_command());
        conn.uploading(framer.uploading());
        progress = match progress {
            Progress::Close => {
                let _ = stream.shutdown().await;
                return CloseReason::Quit;
            }
            Progress::More => session.resume(&env).await,
            Progress::Ready => match framer.next_frame() {
                Some(Frame::Command(command)) => session.command_owned(&env, command).await,
                Some(Frame::Continue) => {
                    session.continue_literal();
                    Progress::Ready
                }
                Some(Frame::Refused { tag, reason, close }) => session.refused(&env, tag, reason, close),
                None => match conn.read(&mut stream, &shared.close_sessions).await {
                    Input::Data(n) => {
                        framer.push(conn.received(n));
                        Progress::Ready
                    }
                    other => return closed(&mut session, conn, &mut stream, other).await,
                },
            },
            Progress::SaslLine => match framer.next_line() {
                Some(Ok(line)) => session.sasl_line(&env, &line).await,
                Some(Err(())) => session.sasl_line(&env, b"*").await,
                None => match conn.read(&mut stream, &shared.close_sessions).await {
                    Input::Data(n) => {
                        framer.push(conn.received(n));
                        Progress::SaslLine
                    }
                    other => return closed(&mut session, conn, &mut stream, other).await,
                },
            },
            Progress::Idle => match framer.next_line() {
                Some(Ok(line)) => session.idle_line(&env, &line).await,
                Some(Err(())) => session.idle_line(&env, b"").await,
                None => {
                    let selected = session.selected_mailbox();
                    tokio::select! {
                        input = conn.read(&mut stream, &shared.close_sessions) => match input {
                            Input::Data(n) => framer.push(conn.received(n)),
                            other => return closed(&mut session, conn, &mut stream, other).await,
                        },
                        change = next_change(&mut changes) => {
                            if change.is_none_or(|m| Some(m) == selected) {
                                session.mailbox_changed();
                                session.idle_sync(&env).await;
                            }
                        }
                    }
                    Progress::Idle
                }
            },
        };
    }
}

/// Marks the session stale if any pending notification concerns its selected mailbox.
fn drain(receiver: &mut broadcast::Receiver<MailboxChange>, session: &mut Session) {
    loop {
        match receiver.try_recv() {
            Ok(change) => {
                if session.selected_mailbox() == Some(change.mailbox) {
                    session.mailbox_changed();
                }
            }
            // Missed some: assume the worst.
            Err(TryRecvError::Lagged(_)) => session.mailbox_changed(),
            Err(TryRecvError::Empty | TryRecvError::Closed) => return,
        }
    }
}

/// The next change notification: `Some(mailbox)`, or `None` when notifications were missed.
/// Never resolves without a subscription.
async fn next_change(changes: &mut Option<broadcast::Receiver<MailboxChange>>) -> Option<i64> {
    match changes {
        Some(receiver) => match receiver.recv().await {
            Ok(change) => Some(change.mailbox),
            Err(broadcast::error::RecvError::Lagged(_)) => None,
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// The read ended: say goodbye where the protocol wants it, and why we stopped.
async fn closed(session: &mut Session, conn: &mut Connection, stream: &mut Stream, input: Input) -> CloseReason {
    let reason = match input {
        Input::Closed => return CloseReason::PeerClosed,
        Input::Revoked => {
            let _ = stream.shutdown().await;
            return CloseReason::Revoked;
        }
        Input::Failed | Input::Data(_) => return CloseReason::IoError,
        Input::Timeout => {
            session.timed_out();
            CloseReason::Timeout
        }
        Input::Shutdown => {
            session.shutting_down();
            CloseReason::Shutdown
        }
    };
    let output = session.take_output();
    let _ = conn.send(stream, &output).await;
    let _ = stream.shutdown().await;
    reason
}
