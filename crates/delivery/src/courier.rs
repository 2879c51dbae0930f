//! Delivery behind one method (chasquid's `Courier`): the queue runner hands a batch of
//! messages for one destination domain to [`Courier::deliver`] and gets one report per
//! recipient and one record per connection, whatever the way (MX or smart host). This file
//! holds the remote courier: the route, each exchanger's TLS policy (DANE first, then
//! MTA-STS, else opportunistic), and the sessions, several messages per connection.

use crate::connection::{self, Plan};
use crate::mta_sts::{Lookup, MtaSts, Policy};
use crate::record::{AttemptOutcome, AttemptRecord, RecipientReport, Why};
use crate::route::{self, Hop, RouteError};
use crate::settings::DeliverySettings;
use crate::tls::{dane, CertificateCheck, HostPolicy, PolicyKind, TlsFailure, TrustRoots};
use async_trait::async_trait;
use portcullis_dns::{DnsError, Resolver};
use portcullis_smtp_client::{
    Cause, ClientConfig, Disposition, Ending, EnhancedCode, LocalReason, Message, MessageResult, Reason,
    SessionFailure, Stage, TlsMode,
};
use std::net::{IpAddr, SocketAddr};
use std::time::SystemTime;
use tokio::time::Instant;

/// Messages for one destination domain (with a smart host, any domains).
#[derive(Debug, Clone)]
pub struct Batch {
    pub domain: String,
    pub messages: Vec<Message>,
}

/// What became of a batch: `messages[i]` answers `batch.messages[i]`, one report per
/// recipient in the message's order.
#[derive(Debug, Clone)]
pub struct BatchReport {
    pub messages: Vec<Vec<RecipientReport>>,
    pub attempts: Vec<AttemptRecord>,
}

/// Delivery behind one method, so the queue does not care where a message goes.
#[async_trait]
pub trait Courier: Send + Sync {
    async fn deliver(&self, batch: Batch) -> BatchReport;
}

/// Delivers to the domain's exchangers, or to the smart host when one is configured.
pub struct RemoteCourier {
    settings: DeliverySettings,
    resolver: Resolver,
    roots: TrustRoots,
    mta_sts: MtaSts,
}

/// A message still to be settled in this attempt.
struct Pending {
    report: Option<Vec<RecipientReport>>,
    /// A host refused it for a reason another host may not have (REQUIRETLS, SMTPUTF8,
    /// 8BITMIME, SIZE): the report if no other host does better.
    fallback: Option<Vec<RecipientReport>>,
}

impl RemoteCourier {
    pub fn new(settings: DeliverySettings, resolver: Resolver, roots: TrustRoots) -> RemoteCourier {
        let mta_sts = MtaSts::new(resolver.clone(), roots.clone(), settings.mta_sts_port, settings.mta_sts_timeout);
        RemoteCourier { settings, resolver, roots, mta_sts }
    }

    fn client_config(&self, policy: &HostPolicy, plaintext: bool) -> ClientConfig {
        let relay = self.settings.relay.as_ref();
        ClientConfig {
            helo_name: self.settings.helo_name.clone(),
            tls: match (policy.requires_tls(), relay) {
                (_, Some(r)) if r.implicit_tls => TlsMode::Never,
                (false, None) if plaintext => TlsMode::Never,
                (true, _) => TlsMode::Required,
                (false, _) => TlsMode::Opportunistic, // STARTTLS always attempted
            },
            credentials: relay.and_then(|r| r.credentials.clone()),
            chunking: self.settings.chunking,
            limits: self.settings.reply_limits,
        }
    }

    /// The route: the smart host, or the domain's exchangers.
    async fn hops(&self, domain: &str) -> Result<Vec<Hop>, RouteError> {
        let s = &self.settings;
        match &s.relay {
            Some(relay) => {
                let found = self.resolver.ip_addrs(&relay.host).await.map_err(|e| {
                    // A smart host that does not resolve is a configuration problem: wait.
                    if e.is_temporary() {
                        RouteError::Temporary(e)
                    } else {
                        RouteError::NoAddress
                    }
                })?;
                let addresses = route::order_addresses(&found, s.ip_preference);
                if addresses.is_empty() {
                    return Err(RouteError::NoAddress);
                }
                Ok(vec![Hop { host: relay.host.clone(), preference: 0, addresses, secure: false }])
            }
            None => route::resolve(&self.resolver, domain, s.ip_preference, s.max_hosts, s.dane).await,
        }
    }

    /// The TLS policy of one exchanger; `Err` when the policy excludes it, with the kind of
    /// policy that did.
    async fn host_policy(
        &self,
        hop: &Hop,
        sts: Option<&Policy>,
        domain: &str,
    ) -> Result<HostPolicy, (String, TlsFailure, PolicyKind)> {
        if self.settings.relay.is_some() {
            return Ok(HostPolicy::Relay);
        }
        if self.settings.dane && hop.secure {
            match self.resolver.authenticated().tlsa(self.settings.port, &hop.host).await {
                Ok(answer) if answer.authentic_data => {
                    let usable: Vec<_> = answer.value.into_iter().filter(dane::usable).collect();
                    // RFC 8461 §2: DANE takes precedence over MTA-STS.
                    return Ok(if usable.is_empty() {
                        HostPolicy::DaneUnusable
                    } else {
                        HostPolicy::Dane { records: usable }
                    });
                }
                Ok(_) | Err(DnsError::NotFound(_)) => {}
                // RFC 7672 §2.2: a secure host whose TLSA records cannot be had is not used
                // (a downgrade to no DANE is what an attacker would cause).
                Err(e) => {
                    let why = format!("TLSA lookup for {} failed: {e}", hop.host);
                    return Err((why, TlsFailure::DnssecInvalid, PolicyKind::Dane));
                }
            }
        }
        match sts {
            Some(policy) if !policy.allows(&hop.host) && policy.mode == crate::mta_sts::Mode::Enforce => Err((
                format!("{} is not an MX host of the MTA-STS policy of {domain}", hop.host),
                TlsFailure::ValidationFailure,
                PolicyKind::MtaStsEnforce,
            )),
            Some(policy) => Ok(HostPolicy::MtaSts {
                domain: domain.to_string(),
                enforce: policy.mode == crate::mta_sts::Mode::Enforce,
            }),
            None => Ok(HostPolicy::Opportunistic),
        }
    }

    fn source_for(&self, ip: IpAddr) -> Option<IpAddr> {
        match ip {
            IpAddr::V4(_) => self.settings.source_ipv4.map(IpAddr::V4),
            IpAddr::V6(_) => self.settings.source_ipv6.map(IpAddr::V6),
        }
    }
}

#[async_trait]
impl Courier for RemoteCourier {
    async fn deliver(&self, batch: Batch) -> BatchReport {
        let domain = batch.domain.trim_end_matches('.').to_ascii_lowercase();
        let deadline = Instant::now() + self.settings.attempt_timeout;
        let mut attempts = Vec::new();
        let hops = match self.hops(&domain).await {
            Ok(hops) => hops,
            Err(e) => {
                let disposition = if e.is_permanent() { Disposition::Permanent } else { Disposition::Temporary };
                let messages = batch
                    .messages
                    .iter()
                    .map(|m| everyone(m, disposition, e.status(), Why::Route(e.clone()), None))
                    .collect();
                return BatchReport { messages, attempts };
            }
        };
        let sts = if self.settings.mta_sts && self.settings.relay.is_none() {
            match self.mta_sts.lookup(&domain, SystemTime::now()).await {
                Lookup::Policy(policy) => Some(policy),
                Lookup::NoPolicy => None,
                Lookup::Unavailable(failure, why) => {
                    attempts.push(AttemptRecord {
                        domain: domain.clone(),
                        host: format!("mta-sts.{domain}"),
                        address: None,
                        policy: PolicyKind::None, // no policy applies; TLS-RPT files the failure under "sts"
                        tls: None,
                        certificate: CertificateCheck::NotChecked,
                        tls_failure: Some(failure),
                        outcome: AttemptOutcome::Skipped(why),
                        messages: 0,
                    });
                    None
                }
            }
        } else {
            None
        };

        let mut pending: Vec<Pending> =
            batch.messages.iter().map(|_| Pending { report: None, fallback: None }).collect();
        let mut last_failure: Option<(Why, Option<String>)> = None;
        let mut connections = 0usize;
        'hosts: for hop in &hops {
            let policy = match self.host_policy(hop, sts.as_ref(), &domain).await {
                Ok(policy) => policy,
                Err((why, failure, kind)) => {
                    attempts.push(AttemptRecord {
                        domain: domain.clone(),
                        host: hop.host.clone(),
                        address: None,
                        policy: kind,
                        tls: None,
                        certificate: CertificateCheck::NotChecked,
                        tls_failure: Some(failure),
                        outcome: AttemptOutcome::Skipped(why.clone()),
                        messages: 0,
                    });
                    last_failure = Some((Why::Policy(why), None));
                    continue;
                }
            };
            let port = self.settings.relay.as_ref().map_or(self.settings.port, |r| r.port);
            for &ip in &hop.addresses {
                // RFC 7435: without a policy, a failed handshake is followed by one session in
                // plaintext to the same address (as Postfix does at security level "may"), so
                // a server whose TLS rustls cannot speak still gets its mail. Never under a
                // policy that requires TLS.
                let mut plaintext = false;
                loop {
                    let open: Vec<usize> = (0..pending.len()).filter(|&i| pending[i].report.is_none()).collect();
                    if open.is_empty() || connections >= self.settings.max_connections.max(1) {
                        break 'hosts;
                    }
                    if Instant::now() >= deadline {
                        last_failure = Some((Why::OutOfTime(self.settings.attempt_timeout), None));
                        break 'hosts;
                    }
                    connections += 1;
                    let messages: Vec<&Message> = open.iter().map(|&i| &batch.messages[i]).collect();
                    let plan = Plan {
                        host: &hop.host,
                        address: SocketAddr::new(ip, port),
                        source: self.source_for(ip),
                        policy: &policy,
                        implicit_tls: self.settings.relay.as_ref().is_some_and(|r| r.implicit_tls),
                        client: self.client_config(&policy, plaintext),
                        timeouts: self.settings.timeouts,
                        roots: &self.roots,
                        deadline,
                    };
                    let run = connection::run(plan, &messages).await;
                    let decided = run.results.len();
                    for (position, result) in run.results {
                        let index = open[position];
                        settle(&mut pending[index], result, &hop.host);
                    }
                    let (outcome, tls_failure) =
                        describe(&run.connect_error, &run.ending, &run.certificate, run.starttls_missing);
                    if let AttemptOutcome::SessionFailed(_) | AttemptOutcome::ConnectFailed(_) = &outcome {
                        let why = match &run.ending {
                            Some(Ending::Failed(f)) => Why::Smtp(Reason::Session(f.clone())),
                            _ => Why::Smtp(Reason::Session(SessionFailure {
                                stage: Stage::Connect,
                                cause: Cause::Connect(run.connect_error.clone().unwrap_or_default()),
                            })),
                        };
                        last_failure = Some((why, Some(hop.host.clone())));
                    }
                    let handshake_failed = decided == 0
                        && matches!(&run.ending, Some(Ending::Failed(f)) if f.stage == Stage::TlsHandshake);
                    attempts.push(AttemptRecord {
                        domain: domain.clone(),
                        host: hop.host.clone(),
                        address: Some(SocketAddr::new(ip, port)),
                        policy: policy.kind(),
                        tls: run.tls,
                        certificate: run.certificate,
                        tls_failure,
                        outcome,
                        messages: decided,
                    });
                    if handshake_failed && !plaintext && !policy.requires_tls() && self.settings.relay.is_none() {
                        plaintext = true;
                        continue;
                    }
                    break;
                }
            }
        }

        let messages = batch
            .messages
            .iter()
            .zip(pending)
            .map(|(message, p)| match (p.report, p.fallback, &last_failure) {
                (Some(report), _, _) | (None, Some(report), _) => report,
                (None, None, Some((why, mta))) => {
                    let status = match why {
                        Why::Smtp(reason) => reason.status(Disposition::Temporary),
                        Why::OutOfTime(_) => EnhancedCode::new(4, 4, 2), // RFC 3463: bad connection
                        _ => EnhancedCode::new(4, 7, 5),
                    };
                    everyone(message, Disposition::Temporary, status, why.clone(), mta.clone())
                }
                (None, None, None) => {
                    everyone(message, Disposition::Temporary, EnhancedCode::new(4, 4, 1), Why::NotAttempted, None)
                }
            })
            .collect();
        BatchReport { messages, attempts }
    }
}

/// Takes a session's result for a message: final, or a fallback if the refusal was about
/// this server's abilities.
fn settle(pending: &mut Pending, result: MessageResult, host: &str) {
    let retry_elsewhere = result.recipients.iter().any(|r| {
        matches!(
            r.reason,
            Reason::Local(
                LocalReason::RequireTlsUnmet
                    | LocalReason::NeedsSmtpUtf8
                    | LocalReason::NeedsEightBitMime
                    | LocalReason::TooBig { .. }
            )
        )
    });
    let reports: Vec<RecipientReport> = result
        .recipients
        .into_iter()
        .map(|r| RecipientReport {
            status: r.reason.status(r.disposition),
            remote_mta: (!matches!(r.reason, Reason::Local(_))).then(|| host.to_string()),
            address: r.address,
            disposition: r.disposition,
            why: Why::Smtp(r.reason),
            peer_offers_dsn: result.peer_offers_dsn,
        })
        .collect();
    if retry_elsewhere {
        pending.fallback = Some(reports);
    } else {
        pending.report = Some(reports);
    }
}

/// The same outcome for every recipient of a message.
fn everyone(
    message: &Message,
    disposition: Disposition,
    status: EnhancedCode,
    why: Why,
    remote_mta: Option<String>,
) -> Vec<RecipientReport> {
    message
        .recipients
        .iter()
        .map(|r| RecipientReport {
            address: r.address.clone(),
            disposition,
            status,
            why: why.clone(),
            remote_mta: remote_mta.clone(),
            peer_offers_dsn: false,
        })
        .collect()
}

/// The record's outcome, and the TLS failure in RFC 8460 terms.
fn describe(
    connect_error: &Option<String>,
    ending: &Option<Ending>,
    certificate: &CertificateCheck,
    starttls_missing: bool,
) -> (AttemptOutcome, Option<TlsFailure>) {
    let mut tls_failure = match certificate {
        CertificateCheck::Invalid(failure) => Some(*failure),
        _ => None,
    };
    if starttls_missing {
        tls_failure = Some(TlsFailure::StarttlsNotSupported);
    }
    let outcome = match (connect_error, ending) {
        (Some(e), _) => AttemptOutcome::ConnectFailed(e.clone()),
        (None, Some(Ending::Quit)) => AttemptOutcome::Completed,
        (None, Some(Ending::Failed(f))) => {
            if let Cause::Tls(_) = f.cause {
                tls_failure = tls_failure.or(Some(TlsFailure::ValidationFailure));
            }
            AttemptOutcome::SessionFailed(f.to_string())
        }
        (None, None) => AttemptOutcome::SessionFailed("the session ended without a close".into()),
    };
    (outcome, tls_failure)
}
