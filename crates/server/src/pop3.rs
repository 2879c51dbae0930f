//! The POP3 driver: runs a [`portcullis_proto_pop3::Session`] over TLS, answering its actions
//! with the login pipeline and the store. The maildrop lock is held for the whole session.

use portcullis_auth::AuthError;
use portcullis_events::{CloseReason, Event};
use portcullis_proto_pop3::{Action, AuthOutcome, Config, Entry, Fact, Maildrop, OpenError, Session};
use portcullis_store::{MailboxId, MaildropLock, StoreError};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::connection::{Connection, Reader};
use crate::login::{authenticate, scram_keys};
use crate::state::Shared;

impl Reader for Session {
    fn feed(&mut self, data: &[u8]) {
        Session::feed(self, data)
    }
    fn peer_closed(&mut self) {
        Session::peer_closed(self)
    }
    fn timed_out(&mut self) {
        Session::timed_out(self)
    }
    fn shutting_down(&mut self) {
        Session::shutting_down(self)
    }
}

pub async fn run(shared: &Shared, conn: &mut Connection, tcp: TcpStream) -> CloseReason {
    let Ok(mut stream) = conn.handshake(shared, tcp).await else {
        return CloseReason::TlsFailed;
    };
    let limits = &shared.config.limits;
    let mut session = Session::new(
        Config {
            hostname: shared.config.hostname.clone(),
            max_line_length: limits.max_line_length,
            max_commands: limits.max_commands,
            max_auth_failures: limits.max_auth_failures,
            max_errors: portcullis_guard::MAX_ERRORS,
        },
        stream.channel_binding(),
    );
    let mut reason = CloseReason::Quit;
    // Held while the maildrop is open; dropped (released) when the session ends.
    let mut open: Option<(MaildropLock, MailboxId)> = None;

    loop {
        let action = session.next_action();
        if matches!(action, Action::Read | Action::Close) {
            let output = session.take_output();
            if conn.send(&mut stream, &output).await.is_err() {
                return CloseReason::IoError;
            }
        }
        match action {
            Action::Read => {
                conn.mid_command(session.mid_command());
                match conn.read_for(&mut stream, &shared.close_sessions, &mut session).await {
                    Ok(Some(why)) => reason = why,
                    Ok(None) => {}
                    Err(()) => return CloseReason::IoError,
                }
            }
            Action::Close => {
                let _ = stream.shutdown().await;
                return reason;
            }
            Action::ScramLookup { username } => session.scram_keys(scram_keys(shared, conn.who(), &username).await),
            Action::Authenticate { method, attempt } => {
                let outcome = match authenticate(shared, conn.who(), method.name(), attempt).await {
                    Ok(principal) => {
                        conn.logged_in();
                        AuthOutcome::Success(principal.account)
                    }
                    Err(AuthError::Refused(_)) => AuthOutcome::InvalidCredentials,
                    Err(AuthError::Unavailable | AuthError::Busy) => AuthOutcome::TemporaryFailure,
                };
                session.auth_result(outcome);
            }
            Action::OpenMaildrop { account } => {
                let result = match open_maildrop(shared, account).await {
                    Ok(Some((lock, mailbox, maildrop))) => {
                        open = Some((lock, mailbox));
                        Ok(maildrop)
                    }
                    Ok(None) => Err(OpenError::InUse),
                    Err(e) => {
                        shared.events.emit(Event::InternalError {
                            conn: Some(conn.id),
                            what: format!("opening a maildrop failed: {e}"),
                        });
                        Err(OpenError::TemporaryFailure)
                    }
                };
                session.maildrop_opened(result);
            }
            Action::Fetch { uid } => {
                let raw = match &open {
                    Some((_, mailbox)) => shared.store.message_raw(*mailbox, uid).await.unwrap_or_else(|e| {
                        shared.events.emit(Event::InternalError {
                            conn: Some(conn.id),
                            what: format!("reading a message failed: {e}"),
                        });
                        None
                    }),
                    None => None,
                };
                session.message_fetched(raw);
                // Out before the next command runs: pipelined RETRs must not pile up copies
                // of messages in memory.
                let output = session.take_output();
                if conn.send(&mut stream, &output).await.is_err() {
                    return CloseReason::IoError;
                }
            }
            Action::Update { delete } => {
                let ok = match &open {
                    Some((_, mailbox)) => match shared.store.expunge(*mailbox, &delete).await {
                        Ok(()) => true,
                        Err(e) => {
                            shared.events.emit(Event::InternalError {
                                conn: Some(conn.id),
                                what: format!("POP3 deletion failed: {e}"),
                            });
                            false
                        }
                    },
                    None => delete.is_empty(),
                };
                session.update_result(ok);
            }
            Action::Report(fact) => {
                if !matches!(fact, Fact::LineTooLong) {
                    reason = CloseReason::Limit;
                }
                shared.events.emit(Event::ProtocolViolation {
                    conn: conn.id,
                    listener: conn.listener,
                    peer: conn.peer,
                    what: match fact {
                        Fact::LineTooLong => "line too long",
                        Fact::TooManyCommands => "too many commands",
                        Fact::TooManyErrors => "too many errors",
                        Fact::TooManyAuthFailures => "too many authentication failures",
                    }
                    .into(),
                });
            }
        }
    }
}

/// Locks the account's maildrop and lists its INBOX; `None` if another session has it.
async fn open_maildrop(
    shared: &Shared,
    account: i64,
) -> Result<Option<(MaildropLock, MailboxId, Maildrop)>, StoreError> {
    let Some(lock) = shared.store.lock_maildrop(account).await? else { return Ok(None) };
    let inbox = shared
        .store
        .mailbox(account, "INBOX")
        .await?
        .ok_or_else(|| StoreError::Backend(format!("account #{account} has no INBOX")))?;
    let messages = shared.store.messages(inbox.id).await?;
    let maildrop = Maildrop {
        uidvalidity: inbox.uidvalidity,
        messages: messages.into_iter().map(|m| Entry { uid: m.uid, size: m.size }).collect(),
    };
    Ok(Some((lock, inbox.id, maildrop)))
}
