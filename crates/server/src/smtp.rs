//! The SMTP driver: runs a [`portcullis_proto_smtp::Session`] over a connection, answering
//! its actions with TLS, the login pipeline, the guard's sending limits and the store; on a
//! listener without logins (port 25) the session is in its MX role, and `mx` answers its
//! own actions (client and sender checks, recipients through the guard, the verdict).

use portcullis_auth::AuthError;
use portcullis_events::{CloseReason, Event, TlsMode};
use portcullis_guard::SendingLimit;
use portcullis_proto_smtp::{
    with_return_path, Action, AuthOutcome, Config, DeliveryOutcome, Envelope, Fact, Peer, Principal, RecipientOutcome,
    Role, Session,
};
use portcullis_smtp_client::OriginalRecipient;
use portcullis_store::{Delivery, DeliveryError, NewQueued, NewRecipient};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::connection::{Connection, Reader};
use crate::delivered_notice;
use crate::login::{authenticate, scram_keys};
use crate::mx::{self, MxState};
use crate::sending_limits;
use crate::socket::Stream;
use crate::state::Shared;
use crate::unix_time;

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
    let implicit_tls = conn.listener.spec().tls == TlsMode::Implicit;
    let mut stream = if implicit_tls {
        match conn.handshake(shared, tcp).await {
            Ok(stream) => stream,
            Err(()) => return CloseReason::TlsFailed,
        }
    } else {
        Stream::Plain(tcp)
    };
    let limits = &shared.config.limits;
    // An SMTP listener where nobody logs in is where other servers deliver: port 25.
    let role = if conn.listener.spec().login { Role::Submission } else { Role::Mx };
    let config = Config {
        hostname: shared.config.hostname.clone(),
        role,
        implicit_tls,
        max_message_size: limits.max_message_size,
        max_recipients: limits.max_recipients,
        max_line_length: limits.max_line_length,
        max_commands: limits.max_commands,
        max_auth_failures: limits.max_auth_failures,
        max_errors: portcullis_guard::MAX_ERRORS,
    };
    let peer = Peer {
        ip: conn.peer.ip(),
        session_id: conn.session_id(),
        tls: stream.tls_summary(),
        channel_binding: stream.channel_binding(),
        name: None,
    };
    let mut session = Session::new(config, peer);
    let mut reason = CloseReason::Quit;
    let mut mx_state = MxState::new();

    loop {
        let action = session.next_action();
        if matches!(action, Action::Read | Action::StartTls | Action::Close) {
            let output = session.take_output();
            if conn.send(&mut stream, &output).await.is_err() {
                return CloseReason::IoError;
            }
        }
        match action {
            Action::Read => {
                conn.mid_command(session.mid_command());
                conn.uploading(session.uploading());
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
            Action::StartTls => {
                stream = match stream {
                    Stream::Plain(tcp) => match conn.handshake(shared, tcp).await {
                        Ok(tls) => tls,
                        Err(()) => return CloseReason::TlsFailed,
                    },
                    tls => tls,
                };
                session.tls_established(stream.tls_summary().unwrap_or_default(), stream.channel_binding());
            }
            Action::ScramLookup { username } => session.scram_keys(scram_keys(shared, conn.who(), &username).await),
            Action::Authenticate { mechanism, attempt } => {
                match authenticate(shared, conn.who(), mechanism.name(), attempt).await {
                    Ok(p) => match shared.aliases.aliases(Some(&p.address)).await {
                        Ok(aliases) => {
                            conn.logged_in();
                            let aliases = aliases.into_iter().map(|a| a.address).collect();
                            let principal = Principal { account: p.account, address: p.address, aliases };
                            session.auth_result(AuthOutcome::Success, Some(principal));
                        }
                        Err(e) => {
                            let what = format!("reading the aliases of {} failed: {e}", p.address);
                            shared.events.emit(Event::InternalError { conn: Some(conn.id), what });
                            session.auth_result(AuthOutcome::TemporaryFailure, None)
                        }
                    },
                    Err(AuthError::Refused(_)) => session.auth_result(AuthOutcome::InvalidCredentials, None),
                    Err(AuthError::Unavailable | AuthError::Busy) => {
                        session.auth_result(AuthOutcome::TemporaryFailure, None)
                    }
                }
            }
            Action::CheckClient => match mx::check_client(shared, conn, &mut stream, &mut session, &mut mx_state).await
            {
                Ok(Some(why)) => reason = why,
                Ok(None) => {}
                Err(()) => return CloseReason::IoError,
            },
            Action::CheckSender { address } => session.sender_result(mx::check_sender(shared, conn, &address).await),
            Action::LookupRecipient { address } => {
                let outcome = match role {
                    Role::Mx => mx::recipient(shared, conn, &address).await,
                    // A logged-in submitter may send anywhere (the session takes `Remote` only
                    // once logged in, and never on 25).
                    Role::Submission => match lookup_recipient(shared, &address).await {
                        RecipientOutcome::NotLocal => RecipientOutcome::Remote,
                        outcome => outcome,
                    },
                };
                if let Some(refusal) = mx::recipient_refusal(outcome) {
                    shared.events.emit(Event::RecipientRefused {
                        conn: conn.id,
                        listener: conn.listener,
                        peer: conn.peer,
                        recipient: address,
                        reason: refusal,
                    });
                }
                session.recipient_result(outcome);
            }
            Action::Deliver(envelope) if role == Role::Mx => {
                let outcome = mx::deliver(shared, conn, stream.tls_parts(), envelope, &mx_state).await;
                session.delivery_result(outcome);
            }
            Action::Deliver(envelope) => {
                let (account_id, account) =
                    session.principal().map(|p| (p.account, p.address.clone())).unwrap_or_default();
                // Remote recipients count toward the hourly limits like local ones: they are
                // what a stolen account would be used for.
                let recipients = (envelope.recipients.len() + envelope.remote_recipients.len()) as u32;
                let outcome = match sending_limits::check(shared, conn.who(), account_id, &account, recipients).await {
                    Ok(()) => deliver(shared, conn, &account, envelope).await,
                    Err(limit) => {
                        let (reason, outcome) = match limit {
                            SendingLimit::Uncounted => ("sending count unavailable", DeliveryOutcome::TemporaryFailure),
                            _ => ("sending limit reached", DeliveryOutcome::SendingLimit),
                        };
                        shared.events.emit(Event::MessageRejected {
                            conn: conn.id,
                            peer: conn.peer,
                            account: account.clone(),
                            size: envelope.data.len() as u64,
                            recipients: recipients as usize,
                            reason: reason.into(),
                        });
                        outcome
                    }
                };
                session.delivery_result(outcome);
            }
            Action::Report(Fact::ForeignAuthor { field, address, size, recipients }) => {
                let account = session.principal().map(|p| p.address.clone()).unwrap_or_default();
                shared.events.emit(Event::MessageRejected {
                    conn: conn.id,
                    peer: conn.peer,
                    reason: format!("{field}: <{address}> is not an address of {account}"),
                    account,
                    size,
                    recipients,
                });
            }
            Action::Report(fact) => {
                if matches!(
                    fact,
                    Fact::TooManyCommands
                        | Fact::TooManyErrors
                        | Fact::TooManyAuthFailures
                        | Fact::HttpRequest
                        | Fact::EarlyTalker
                        | Fact::UnofferedPipelining
                ) {
                    reason = CloseReason::Limit;
                }
                if matches!(fact, Fact::EarlyTalker | Fact::UnofferedPipelining) {
                    // The refusal goes out first: a ban the guard decides now cuts the connection.
                    let output = session.take_output();
                    if conn.send(&mut stream, &output).await.is_err() {
                        return CloseReason::IoError;
                    }
                    mx::early_talk(shared, conn).await;
                }
                shared.events.emit(Event::ProtocolViolation {
                    conn: conn.id,
                    listener: conn.listener,
                    peer: conn.peer,
                    what: describe(&fact),
                });
            }
        }
    }
}

fn describe(fact: &Fact) -> String {
    match fact {
        Fact::LineTooLong => "line too long".into(),
        Fact::TooManyCommands => "too many commands".into(),
        Fact::TooManyErrors => "too many errors".into(),
        Fact::TooManyAuthFailures => "too many authentication failures".into(),
        Fact::CommandBeforeStartTls(command) => format!("{command} before STARTTLS"),
        Fact::MessageTooBig => "message too big".into(),
        Fact::HttpRequest => "HTTP request on a mail port".into(),
        Fact::EarlyTalker => "spoke before the greeting".into(),
        Fact::UnofferedPipelining => "pipelined before PIPELINING was offered".into(),
        Fact::AuthOnMx => "AUTH on port 25".into(),
        Fact::ForeignAuthor { field, address, .. } => format!("{field}: <{address}> is not the account's"),
    }
}

/// Whether `address` is a local account (or an alias of one) with room, an unknown user of a
/// local domain, or not local at all.
pub(crate) async fn lookup_recipient(shared: &Shared, address: &str) -> RecipientOutcome {
    match shared.aliases.recipient(address).await {
        Ok(Some(account)) if !account.has_room_for(1) => RecipientOutcome::MailboxFull,
        Ok(Some(account)) => RecipientOutcome::Local(account.id),
        Ok(None) => {
            let domain = address.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
            match shared.store.is_local_domain(domain).await {
                Ok(true) => RecipientOutcome::UnknownUser,
                Ok(false) => RecipientOutcome::NotLocal,
                Err(_) => RecipientOutcome::TemporaryFailure,
            }
        }
        Err(e) => {
            shared.events.emit(Event::InternalError { conn: None, what: format!("recipient lookup failed: {e}") });
            RecipientOutcome::TemporaryFailure
        }
    }
}

async fn deliver(shared: &Shared, conn: &Connection, account: &str, envelope: Envelope) -> DeliveryOutcome {
    let size = envelope.data.len() as u64;
    let recipients = envelope.recipients.len() + envelope.remote_recipients.len();
    let now = unix_time::now_seconds();
    let local_ids: Vec<i64> = envelope.recipients.iter().map(|(_, id)| *id).collect();
    let rejected = |reason: String| Event::MessageRejected {
        conn: conn.id,
        peer: conn.peer,
        account: account.to_string(),
        size,
        recipients,
        reason,
    };
    // The header of what is stored, for a "delivered" notice (RFC 3461 NOTIFY=SUCCESS).
    let notified = (!envelope.notify_delivered.is_empty()).then(|| {
        let header_end = envelope.data.windows(4).position(|w| w == b"\r\n\r\n").map_or(envelope.data.len(), |i| i + 4);
        (
            envelope.from.clone(),
            envelope.envid.clone(),
            envelope.notify_delivered.clone(),
            envelope.data[..header_end].to_vec(),
        )
    });
    // Local recipients get their copies and remote ones are queued in one transaction: the
    // client hears 250 only once both are durable (docs/architecture.md §4.6). The local
    // copies are final delivery: Return-Path on top (RFC 5321 §4.4); the queued copy has
    // none, the receiving side adds its own.
    let local_copy = || with_return_path(&envelope.from, &envelope.data);
    let stored = if envelope.remote_recipients.is_empty() {
        shared.store.deliver(Delivery { recipients: local_ids, raw: local_copy(), internal_date: now }).await
    } else {
        let local =
            (!local_ids.is_empty()).then(|| Delivery { recipients: local_ids, raw: local_copy(), internal_date: now });
        // RFC 6531 §3.4: the envelope holds UTF-8 (the client used SMTPUTF8 for it).
        let smtputf8 = !envelope.from.is_ascii() || envelope.remote_recipients.iter().any(|r| !r.address.is_ascii());
        let eight_bit = envelope.data.iter().any(|&b| b >= 0x80);
        // Signed once, before it is queued: every attempt sends the same signed bytes.
        let content = shared.dkim.sign_submission(conn.id, account, envelope.data, now).await;
        let queued = NewQueued {
            sender: envelope.from,
            // RFC 3461: kept in their ESMTP text forms, ORCPT as "rfc822;xtext".
            recipients: envelope
                .remote_recipients
                .into_iter()
                .map(|r| NewRecipient {
                    address: r.address,
                    notify: r.notify,
                    orcpt: r.orcpt.and_then(|o| OriginalRecipient::rfc822(&o).param()),
                })
                .collect(),
            ret: envelope.ret.map(str::to_string),
            envid: envelope.envid,
            smtputf8,
            eight_bit,
            // RFC 8689 §4.1: the sender asked that every hop keep it under validated TLS.
            requiretls: envelope.require_tls,
            content,
            queued_at: now,
        };
        let queued = shared.queue.enqueue(queued, local).await.map(|_| ());
        if queued.is_ok() {
            shared.queue_wakeup.notify_one();
        }
        queued
    };
    match stored {
        Ok(()) => {
            shared.events.emit(Event::MessageAccepted {
                conn: conn.id,
                peer: conn.peer,
                account: account.to_string(),
                size,
                recipients,
            });
            if let Some((sender, envid, notify, header)) = notified {
                let unique = format!("{}.{now}.delivered", conn.session_id());
                let about = delivered_notice::Delivered {
                    sender: &sender,
                    envid: envid.as_deref(),
                    recipients: &notify,
                    content: &header,
                    unique: &unique,
                };
                delivered_notice::send(shared, about).await;
            }
            DeliveryOutcome::Stored
        }
        Err(DeliveryError::QuotaExceeded(who)) => {
            shared.events.emit(rejected(format!("mailbox of {who} is full")));
            DeliveryOutcome::MailboxFull(who)
        }
        Err(DeliveryError::Store(e)) => {
            shared.events.emit(Event::InternalError { conn: Some(conn.id), what: format!("delivery failed: {e}") });
            shared.events.emit(rejected("storage failure".into()));
            DeliveryOutcome::TemporaryFailure
        }
    }
}
