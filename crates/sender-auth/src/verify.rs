//! The DNS-touching part, kept thin: mail-auth (Stalwart's) evaluates SPF (RFC 7208), every
//! DKIM signature (RFC 6376), ARC (RFC 8617) and DMARC (RFC 7489, as revised) on the one
//! resolver of the server; this file runs them concurrently under one deadline and turns
//! their outputs into the plain [`Verdict`].

use crate::iprev::check_iprev;
use crate::verdict::*;
use base64::Engine;
use mail_auth::dkim::DkimError;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{AuthenticatedMessage, DkimOutput, MessageAuthenticator, SpfOutput};
use portcullis_dns::Resolver;
use std::time::Duration;
use tokio::time::{timeout_at, Instant};

/// Signatures checked per message (RFC 6376 §6.1 lets a verifier limit them): each may cost
/// a DNS lookup, and a sender should not make us do hundreds.
pub const MAX_DKIM_SIGNATURES: usize = 10;
/// Distinct author domains in `From:` evaluated for DMARC (see [`dmarc`]).
const MAX_AUTHOR_DOMAINS: usize = 5;

const DEADLINE_PASSED: &str = "the checks ran out of time";

/// Runs every check of one message. Nothing here fails: what could not be decided is a
/// `temperror` in the verdict.
pub(crate) async fn verify(
    mail_auth: &MessageAuthenticator,
    resolver: &Resolver,
    authserv_id: &str,
    deadline: Duration,
    envelope: &Envelope,
    message: &[u8],
    iprev: Option<IprevCheck>,
) -> Verdict {
    // SPF, DKIM, ARC and FCrDNS run side by side within the first three quarters of the
    // time; DMARC, which needs their results, keeps the last quarter for its own lookups.
    let started = Instant::now();
    let (deadline, dmarc_deadline) = (started + deadline.mul_f32(0.75), started + deadline);
    let (ip, helo, mail_from) = (envelope.client_ip, envelope.helo.as_str(), envelope.mail_from.as_str());
    let mail_from_domain = envelope.mail_from_domain().to_ascii_lowercase();
    let parsed = AuthenticatedMessage::parse(message).map(|mut parsed| {
        parsed.dkim_headers.truncate(MAX_DKIM_SIGNATURES);
        parsed
    });

    let spf_helo = timeout_at(deadline, mail_auth.verify_spf(SpfParameters::verify_ehlo(ip, helo, authserv_id)));
    let spf_mail_from =
        timeout_at(deadline, mail_auth.verify_spf(SpfParameters::verify_mail_from(ip, helo, authserv_id, mail_from)));
    let dkim = async {
        match &parsed {
            Some(parsed) => timeout_at(deadline, mail_auth.verify_dkim(parsed)).await.ok(),
            None => Some(Vec::new()),
        }
    };
    let arc = async {
        match &parsed {
            Some(parsed) => match timeout_at(deadline, mail_auth.verify_arc(parsed)).await {
                Ok(output) => arc_check(output.result(), output.sets().len()),
                Err(_) => ArcCheck { result: ArcResult::Fail, sets: 0, reason: Some(DEADLINE_PASSED.into()) },
            },
            None => ArcCheck { result: ArcResult::None, sets: 0, reason: None },
        }
    };
    let iprev = async {
        match iprev {
            Some(known) => known,
            None => timeout_at(deadline, check_iprev(resolver, ip))
                .await
                .unwrap_or(IprevCheck { result: IprevResult::TempError, names: vec![] }),
        }
    };
    let (spf_helo, spf_mail_from, dkim, arc, iprev) = tokio::join!(spf_helo, spf_mail_from, dkim, arc, iprev);

    // A check cut short by the deadline is a temperror: for DMARC too, which then cannot
    // fail on the evidence that is missing (an aligned temperror makes DMARC temperror).
    let spf_mail_from = spf_mail_from
        .unwrap_or_else(|_| SpfOutput::new(mail_from_domain.clone()).with_result(mail_auth::SpfResult::TempError));
    let spf_helo_check = match spf_helo {
        Ok(output) => spf_check(&output),
        Err(_) => SpfCheck { result: SpfResult::TempError, domain: helo.to_ascii_lowercase() },
    };
    let dkim = match (dkim, &parsed) {
        (Some(outputs), _) => outputs,
        (None, Some(parsed)) => parsed
            .dkim_headers
            .iter()
            .map(|signature| {
                let cut = mail_auth::Error::Dns(mail_auth::DnsError::Resolver(DEADLINE_PASSED.into()));
                DkimOutput::temp_err(cut).with_signature(&signature.header)
            })
            .collect(),
        (None, None) => Vec::new(),
    };

    let dmarc = match &parsed {
        Some(parsed) => {
            let evaluated =
                timeout_at(dmarc_deadline, dmarc(mail_auth, parsed, &dkim, &mail_from_domain, &spf_mail_from)).await;
            evaluated.unwrap_or_else(|_| DmarcCheck {
                result: DmarcResult::TempError,
                from_domain: parsed.from().rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase()).unwrap_or_default(),
                policy: None,
                spf_aligned: false,
                dkim_aligned: false,
                reason: Some(DEADLINE_PASSED.into()),
            })
        }
        None => DmarcCheck {
            result: DmarcResult::None,
            from_domain: String::new(),
            policy: None,
            spf_aligned: false,
            dkim_aligned: false,
            reason: Some("the message has no header section".into()),
        },
    };
    Verdict {
        envelope: envelope.clone(),
        spf_helo: spf_helo_check,
        spf_mail_from: spf_check(&spf_mail_from),
        dkim: dkim.iter().map(dkim_check).collect(),
        dmarc,
        arc,
        iprev,
    }
}

/// DMARC for the author domain. `From:` with several addresses of different domains is
/// evaluated once per domain and the harshest outcome kept: RFC 7489 §6.6.1 lets receivers
/// do so, and skipping DMARC for such messages (as the library does) would let anyone
/// escape a `p=reject` domain by adding a second author.
async fn dmarc(
    mail_auth: &MessageAuthenticator,
    message: &AuthenticatedMessage<'_>,
    dkim: &[DkimOutput<'_>],
    mail_from_domain: &str,
    spf: &SpfOutput,
) -> DmarcCheck {
    let mut authors: Vec<(String, &String)> = Vec::new();
    for address in &message.from {
        let Some((_, domain)) = address.rsplit_once('@') else { continue };
        let domain = domain.to_ascii_lowercase();
        if !authors.iter().any(|(d, _)| *d == domain) {
            authors.push((domain, address));
        }
    }
    if authors.len() <= 1 {
        let output = mail_auth.verify_dmarc(DmarcParameters::new(message, dkim, mail_from_domain, spf)).await;
        return dmarc_check(&output);
    }
    let mut harshest: Option<DmarcCheck> = None;
    for (_, address) in authors.iter().take(MAX_AUTHOR_DOMAINS) {
        let mut single = message.clone();
        single.from = vec![(*address).clone()];
        let output = mail_auth.verify_dmarc(DmarcParameters::new(&single, dkim, mail_from_domain, spf)).await;
        let check = dmarc_check(&output);
        if harshest.as_ref().is_none_or(|h| severity(&check) > severity(h)) {
            harshest = Some(check);
        }
    }
    harshest.unwrap_or_else(|| DmarcCheck {
        result: DmarcResult::None,
        from_domain: String::new(),
        policy: None,
        spf_aligned: false,
        dkim_aligned: false,
        reason: None,
    })
}

/// How bad a DMARC outcome is for the message, to keep the harshest of several authors.
fn severity(check: &DmarcCheck) -> u8 {
    match (check.result, check.policy) {
        (DmarcResult::Fail, Some(DmarcPolicy::Reject)) => 6,
        (DmarcResult::TempError, _) => 5,
        (DmarcResult::Fail, Some(DmarcPolicy::Quarantine)) => 4,
        (DmarcResult::Fail, _) => 3,
        (DmarcResult::PermError, _) => 2,
        (DmarcResult::None, _) => 1,
        (DmarcResult::Pass, _) => 0,
    }
}

fn spf_check(output: &SpfOutput) -> SpfCheck {
    let result = match output.result() {
        mail_auth::SpfResult::Pass => SpfResult::Pass,
        mail_auth::SpfResult::Fail => SpfResult::Fail,
        mail_auth::SpfResult::SoftFail => SpfResult::SoftFail,
        mail_auth::SpfResult::Neutral => SpfResult::Neutral,
        mail_auth::SpfResult::TempError => SpfResult::TempError,
        mail_auth::SpfResult::PermError => SpfResult::PermError,
        mail_auth::SpfResult::None => SpfResult::None,
    };
    SpfCheck { result, domain: output.domain().to_ascii_lowercase() }
}

fn dkim_check(output: &DkimOutput<'_>) -> DkimCheck {
    use mail_auth::DkimResult as Lib;
    let (result, reason) = match output.result() {
        Lib::Pass => (DkimResult::Pass, None),
        // The library calls a changed body "neutral"; RFC 6376 §6.1.3 makes it a failed
        // verification, which RFC 8601 §2.7.1 names "fail".
        Lib::Neutral(mail_auth::Error::Dkim(DkimError::FailedBodyHashMatch)) => {
            (DkimResult::Fail, Some("body hash did not verify".to_string()))
        }
        Lib::Neutral(err) => (DkimResult::Neutral, Some(err.to_string())),
        Lib::Fail(err) => (DkimResult::Fail, Some(err.to_string())),
        Lib::PermError(err) => (DkimResult::PermError, Some(err.to_string())),
        Lib::TempError(err) => (DkimResult::TempError, Some(err.to_string())),
        Lib::None => (DkimResult::None, None),
    };
    let mut check = DkimCheck {
        result,
        domain: String::new(),
        selector: String::new(),
        algorithm: String::new(),
        signature_prefix: String::new(),
        reason,
    };
    if let Some(signature) = output.signature() {
        check.domain = signature.d.to_ascii_lowercase();
        check.selector = signature.s.clone();
        check.algorithm = match signature.a {
            mail_auth::common::crypto::Algorithm::RsaSha1 => "rsa-sha1",
            mail_auth::common::crypto::Algorithm::RsaSha256 => "rsa-sha256",
            mail_auth::common::crypto::Algorithm::Ed25519Sha256 => "ed25519-sha256",
        }
        .to_string();
        // RFC 6008 §4: the first 8 characters of b=, from its first 6 octets.
        let prefix = &signature.b[..signature.b.len().min(6)];
        check.signature_prefix = base64::engine::general_purpose::STANDARD.encode(prefix);
    }
    check
}

fn arc_check(result: &mail_auth::DkimResult, sets: usize) -> ArcCheck {
    use mail_auth::DkimResult as Lib;
    // RFC 8617 §10.1 knows only none, pass and fail; a DNS failure is a fail with its reason.
    let (result, reason) = match result {
        Lib::Pass => (ArcResult::Pass, None),
        Lib::None => (ArcResult::None, None),
        Lib::TempError(err) => (ArcResult::Fail, Some(format!("temporary DNS failure: {err}"))),
        Lib::Fail(err) | Lib::Neutral(err) | Lib::PermError(err) => (ArcResult::Fail, Some(err.to_string())),
    };
    ArcCheck { result, sets, reason }
}

fn dmarc_check(output: &mail_auth::DmarcOutput) -> DmarcCheck {
    use mail_auth::DmarcResult as Lib;
    let (result, reason) = match output.result() {
        Lib::Pass => (DmarcResult::Pass, None),
        Lib::Fail(_) => {
            (DmarcResult::Fail, Some("neither SPF nor DKIM passed aligned with the From domain".to_string()))
        }
        Lib::TempError(err) => (DmarcResult::TempError, Some(err.to_string())),
        Lib::PermError(err) => (DmarcResult::PermError, Some(err.to_string())),
        Lib::None => (DmarcResult::None, None),
    };
    let policy = output.dmarc_record().map(|_| match output.policy() {
        mail_auth::dmarc::Policy::Reject => DmarcPolicy::Reject,
        mail_auth::dmarc::Policy::Quarantine => DmarcPolicy::Quarantine,
        mail_auth::dmarc::Policy::None | mail_auth::dmarc::Policy::Unspecified => DmarcPolicy::None,
    });
    DmarcCheck {
        result,
        from_domain: output.domain().to_ascii_lowercase(),
        policy,
        spf_aligned: *output.spf_result() == Lib::Pass,
        dkim_aligned: *output.dkim_result() == Lib::Pass,
        reason,
    }
}
