//! Port 25's answers to the SMTP session's actions (the session is in its MX role): the client
//! checks before the greeting, the sender checks at MAIL FROM, recipients through the guard's
//! rates and harvest defence, and the end of DATA: who really sent the message
//! (`portcullis_sender_auth`), what the operator's policy makes of it, and the store (INBOX or
//! Junk, with our `Authentication-Results` and `Received-SPF` on top). Every step is an event.
//!
//! The session reports facts, the guard decides: this file asks the guard (rates, unknown
//! recipients, early talk) and the sender-authentication crate (verdicts), and records what
//! they decided.

use portcullis_config::{AuthAction, Config, TempErrorAction};
use portcullis_events::{CloseReason, Event, RecipientRefusal};
use portcullis_guard::{Now, Rate};
use portcullis_proto_smtp::{
    ClientOutcome, DeliveryOutcome, Envelope, RecipientOutcome, Refusal, SenderOutcome, Session,
};
use portcullis_sender_auth::{self as sender_auth, Authenticator, Decision, IprevCheck, IprevResult, Summary};
use portcullis_store::{Delivery, DeliveryError, Flags};

use crate::connection::{Connection, Input};
use crate::socket::Stream;
use crate::state::Shared;
use crate::unix_time;

/// What a port-25 connection remembers between actions: the decision and the reverse DNS
/// found at connect (a DNSBL listing filed as Junk applies to every message of the session).
pub struct MxState {
    connect: Decision,
    iprev: Option<IprevCheck>,
}

impl MxState {
    pub fn new() -> MxState {
        MxState { connect: Decision::Accept, iprev: None }
    }
}

/// The one authenticator of the server: the `[dns]` resolver and the `[sender_auth]` policy,
/// with the hostname as authserv-id.
pub fn authenticator(config: &Config, resolver: portcullis_dns::Resolver) -> Authenticator {
    Authenticator::new(resolver, auth_settings(config))
}

fn failure_action(action: AuthAction) -> sender_auth::FailureAction {
    match action {
        AuthAction::Reject => sender_auth::FailureAction::Reject,
        AuthAction::Junk => sender_auth::FailureAction::Junk,
        AuthAction::Accept => sender_auth::FailureAction::Accept,
    }
}

fn auth_settings(config: &Config) -> sender_auth::AuthSettings {
    let s = &config.sender_auth;
    let mut settings = sender_auth::AuthSettings::new(config.hostname.clone());
    settings.policy = sender_auth::Policy {
        dmarc_reject: failure_action(s.dmarc_reject),
        dmarc_quarantine: failure_action(s.dmarc_quarantine),
        spf_fail: failure_action(s.spf_fail),
        null_mx_sender: failure_action(s.null_mx_sender),
        unroutable_sender: failure_action(s.unroutable_sender),
        dnsbl_listed: failure_action(s.dnsbl_listed),
        temp_errors: match s.temp_errors {
            TempErrorAction::TempFail => sender_auth::TempErrorAction::TempFail,
            TempErrorAction::Accept => sender_auth::TempErrorAction::Accept,
        },
    };
    settings.dnsbl_zones = s.dnsbl.clone();
    settings.deadline = s.deadline;
    settings
}

fn refusal(reply: &sender_auth::Reply) -> Refusal {
    Refusal { code: reply.code, enhanced: reply.enhanced, text: reply.text.clone() }
}

/// Before the greeting: checks the client (reverse DNS, DNSBL) and waits out
/// `smtp.greeting_delay`, reading meanwhile; whatever the client sends makes it an early talker
/// at once (the session refuses it). Then the session has its outcome; returns how the
/// connection ended if it did (`Err` when it failed).
pub async fn check_client(
    shared: &Shared,
    conn: &mut Connection,
    stream: &mut Stream,
    session: &mut Session,
    state: &mut MxState,
) -> Result<Option<CloseReason>, ()> {
    let ip = conn.peer.ip();
    let checks = async {
        let (check, ()) = tokio::join!(
            async {
                match &shared.sender_auth {
                    Some(auth) => Some(auth.check_client(ip).await),
                    None => None,
                }
            },
            tokio::time::sleep(shared.config.smtp.greeting_delay)
        );
        check
    };
    // Either the checks finish first, or the client speaks (or leaves) before the greeting.
    let check = tokio::select! {
        check = checks => check,
        input = conn.read(stream, &shared.close_sessions) => match input {
            Input::Data(n) => {
                // An early talker: no need to wait for the checks to refuse it.
                session.feed(conn.received(n));
                session.client_checked(ClientOutcome::default());
                return Ok(None);
            }
            Input::Closed | Input::Revoked => {
                session.peer_closed();
                return Ok(Some(CloseReason::PeerClosed));
            }
            Input::Timeout => {
                session.timed_out();
                return Ok(Some(CloseReason::Timeout));
            }
            Input::Shutdown => {
                session.shutting_down();
                return Ok(Some(CloseReason::Shutdown));
            }
            Input::Failed => return Err(()),
        },
    };
    let Some(check) = check else {
        session.client_checked(ClientOutcome::default());
        return Ok(None);
    };
    let listed: Vec<String> = check
        .dnsbl
        .iter()
        .filter(|c| matches!(c.result, sender_auth::DnsblResult::Listed { .. }))
        .map(|c| c.zone.clone())
        .collect();
    let confirmed = check.iprev.result == IprevResult::Pass;
    shared.events.emit(Event::ClientChecked {
        conn: conn.id,
        peer: conn.peer,
        iprev: check.iprev.result.as_str(),
        names: if confirmed { check.iprev.names.clone() } else { Vec::new() },
        listed,
        decision: check.decision.label(),
    });
    let outcome = ClientOutcome {
        refuse: match &check.decision {
            Decision::Reject(reply) => Some(reply.text.clone()),
            _ => None,
        },
        name: confirmed.then(|| check.iprev.names.first().cloned()).flatten(),
    };
    state.connect = check.decision;
    state.iprev = Some(check.iprev);
    session.client_checked(outcome);
    Ok(None)
}

/// MAIL FROM: the source's message rate, then whether mail to the sender's domain could be
/// delivered at all.
pub async fn check_sender(shared: &Shared, conn: &Connection, address: &str) -> SenderOutcome {
    if let Err(hit) = shared.guard.rate(conn.listener, Rate::Messages, conn.peer.ip(), 1, Now::current()) {
        shared.events.emit(Event::RateLimited {
            conn: conn.id,
            listener: conn.listener,
            peer: conn.peer,
            limit: hit.rate.as_str(),
            value: hit.limit,
        });
        return SenderOutcome::Refused(Refusal {
            code: 451,
            enhanced: "4.7.1",
            text: "Too many messages from your address; try again later".into(),
        });
    }
    let Some(auth) = &shared.sender_auth else { return SenderOutcome::Accept };
    let (check, decision) = auth.check_sender(address).await;
    let result = match &check.outcome {
        sender_auth::SenderDomain::NullSender => "null_sender",
        sender_auth::SenderDomain::AddressLiteral => "address_literal",
        sender_auth::SenderDomain::Routable => "routable",
        sender_auth::SenderDomain::NullMx => "null_mx",
        sender_auth::SenderDomain::Unroutable => "unroutable",
        sender_auth::SenderDomain::Temporary(_) => "temporary",
    };
    shared.events.emit(Event::SenderChecked {
        conn: conn.id,
        peer: conn.peer,
        mail_from: address.to_string(),
        result,
        decision: decision.label(),
        reason: decision.reason().map(|r| r.as_str()),
    });
    match &decision {
        Decision::Reject(reply) | Decision::TempFail(reply) => SenderOutcome::Refused(refusal(reply)),
        // A sender domain filed as Junk leaves the message to the end-of-DATA verdict.
        Decision::Accept | Decision::AcceptToJunk { .. } => SenderOutcome::Accept,
    }
}

/// RCPT TO on 25: the source's recipient rate, then the lookup; an unknown user costs the
/// source a growing delay and, in a harvest, a ban (the guard decides).
pub async fn recipient(shared: &Shared, conn: &Connection, address: &str) -> RecipientOutcome {
    let now = Now::current();
    if let Err(hit) = shared.guard.rate(conn.listener, Rate::Recipients, conn.peer.ip(), 1, now) {
        shared.events.emit(Event::RateLimited {
            conn: conn.id,
            listener: conn.listener,
            peer: conn.peer,
            limit: hit.rate.as_str(),
            value: hit.limit,
        });
        return RecipientOutcome::RateLimited;
    }
    let outcome = crate::smtp::lookup_recipient(shared, address).await;
    if outcome == RecipientOutcome::UnknownUser {
        let verdict = shared.guard.unknown_recipient(conn.peer.ip(), now);
        for ban in &verdict.bans {
            crate::bans::record(shared, ban).await;
        }
        if !verdict.delay.is_zero() {
            tokio::time::sleep(verdict.delay).await;
        }
    }
    outcome
}

/// The session refused an early talker (or a client pipelining before PIPELINING was
/// offered): the guard counts it, and may ban the source.
pub async fn early_talk(shared: &Shared, conn: &Connection) {
    for ban in shared.guard.early_talk(conn.peer.ip(), Now::current()) {
        crate::bans::record(shared, &ban).await;
    }
}

/// Which mailbox a message goes to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mailbox {
    Inbox,
    Junk,
}

impl Mailbox {
    fn name(self) -> &'static str {
        match self {
            Mailbox::Inbox => "INBOX",
            Mailbox::Junk => "Junk",
        }
    }
}

/// The end of DATA: the verdict on who sent the message, the decision under the policy (and
/// the connect-time one), then the store. Answered 250 only once stored.
pub async fn deliver(
    shared: &Shared,
    conn: &Connection,
    tls: Option<(String, String)>,
    envelope: Envelope,
    state: &MxState,
) -> DeliveryOutcome {
    let Some(auth) = &shared.sender_auth else { return DeliveryOutcome::TemporaryFailure };
    let checked = sender_auth::Envelope {
        client_ip: conn.peer.ip(),
        helo: envelope.helo.clone(),
        mail_from: envelope.from.clone(),
    };
    let verdict = auth.verify(&checked, envelope.message(), state.iprev.clone()).await;
    let decision = auth.decide(&verdict).most_severe(state.connect.clone());
    let summary = Summary::new(&verdict, &decision);
    shared.events.emit(Event::SenderVerdict {
        conn: conn.id,
        peer: conn.peer,
        mail_from: summary.mail_from,
        from_domain: summary.from_domain,
        spf: summary.spf,
        spf_helo: summary.spf_helo,
        dkim: summary.dkim,
        dkim_domains: summary.dkim_domains,
        dmarc: summary.dmarc,
        dmarc_policy: summary.dmarc_policy,
        arc: summary.arc,
        iprev: summary.iprev,
        decision: summary.decision,
        reason: summary.reason,
    });
    let mailbox = match &decision {
        Decision::Accept => Mailbox::Inbox,
        Decision::AcceptToJunk { .. } => Mailbox::Junk,
        Decision::Reject(reply) | Decision::TempFail(reply) => return DeliveryOutcome::Refused(refusal(reply)),
    };
    // Ours on top; any Authentication-Results claiming our authserv-id removed (RFC 8601 §5);
    // and above all, Return-Path: this is final delivery (RFC 5321 §4.4).
    let raw = portcullis_proto_smtp::with_return_path(&envelope.from, &auth.stamp(&verdict, &envelope.data));
    let size = raw.len() as u64;
    let accounts: Vec<i64> = envelope.recipients.iter().map(|(_, id)| *id).collect();
    let stored = match mailbox {
        Mailbox::Inbox => {
            let delivery = Delivery { recipients: accounts, raw, internal_date: unix_time::now_seconds() };
            shared.store.deliver(delivery).await
        }
        Mailbox::Junk => store_in_junk(shared, &accounts, raw).await,
    };
    match stored {
        Ok(()) => {
            let (tls_version, tls_cipher) = tls.unzip();
            shared.events.emit(Event::MessageReceived {
                conn: conn.id,
                peer: conn.peer,
                helo: envelope.helo,
                mail_from: envelope.from,
                size,
                recipients: envelope.recipients.len(),
                mailbox: mailbox.name(),
                tls_version,
                tls_cipher,
                require_tls: envelope.require_tls,
            });
            DeliveryOutcome::Stored
        }
        Err(DeliveryError::QuotaExceeded(who)) => DeliveryOutcome::MailboxFull(who),
        Err(DeliveryError::Store(e)) => {
            shared.events.emit(Event::InternalError { conn: Some(conn.id), what: format!("delivery failed: {e}") });
            DeliveryOutcome::TemporaryFailure
        }
    }
}

/// Into each recipient's Junk mailbox (their INBOX if they have none), one append each: a
/// message filed as Junk is rare, and the store's one-transaction delivery knows only INBOX.
async fn store_in_junk(shared: &Shared, accounts: &[i64], raw: Vec<u8>) -> Result<(), DeliveryError> {
    let internal_date = unix_time::now_seconds();
    for &account in accounts {
        match shared.store.mailbox(account, Mailbox::Junk.name()).await.map_err(DeliveryError::Store)? {
            Some(junk) => {
                shared.store.append(junk.id, raw.clone(), Flags::default(), internal_date).await?;
            }
            None => {
                let delivery = Delivery { recipients: vec![account], raw: raw.clone(), internal_date };
                shared.store.deliver(delivery).await?;
            }
        }
    }
    Ok(())
}

/// How a recipient refusal is logged; `None` for an accepted one.
pub fn recipient_refusal(outcome: RecipientOutcome) -> Option<RecipientRefusal> {
    match outcome {
        // `Remote` is only ever answered on submission, after login, where the session takes it.
        RecipientOutcome::Local(_) | RecipientOutcome::Remote => None,
        RecipientOutcome::UnknownUser => Some(RecipientRefusal::UnknownUser),
        RecipientOutcome::NotLocal => Some(RecipientRefusal::NotLocal),
        RecipientOutcome::MailboxFull => Some(RecipientRefusal::MailboxFull),
        RecipientOutcome::RateLimited => Some(RecipientRefusal::RateLimited),
        RecipientOutcome::TemporaryFailure => Some(RecipientRefusal::TemporaryFailure),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_words_are_the_sender_auth_words() {
        assert_eq!(AuthAction::WORDS, sender_auth::FailureAction::WORDS);
        assert_eq!(TempErrorAction::WORDS, sender_auth::TempErrorAction::WORDS);
        for (action, word) in
            [(AuthAction::Reject, "reject"), (AuthAction::Junk, "junk"), (AuthAction::Accept, "accept")]
        {
            assert_eq!(failure_action(action).as_str(), word);
        }
    }
}
