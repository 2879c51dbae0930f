//! What to do with a message, a sender or a client, given the verdict and the operator's
//! [`Policy`]: accept, accept into Junk, refuse (5yz) or ask to retry (4yz). Pure functions
//! of their arguments, tested without DNS; the SMTP session sends the [`Reply`] as it is.
//!
//! A temporary DNS failure leads to a 4yz only when the missing answer could change the
//! outcome (issue 14: never a silent accept or reject); when every possible answer would be
//! accepted anyway, the message is accepted and the headers say `temperror`.

use crate::dnsbl::{DnsblCheck, DnsblResult};
use crate::sender_domain::{SenderDomain, SenderDomainCheck};
use crate::settings::{FailureAction, Policy, TempErrorAction};
use crate::verdict::{DmarcPolicy, DmarcResult, SpfResult, Verdict};
use serde::Serialize;

/// Why a decision was not a plain accept. Serialised in events (snake_case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// DMARC failed for a domain that asks `p=reject`.
    DmarcReject,
    /// DMARC failed for a domain that asks `p=quarantine`.
    DmarcQuarantine,
    /// DMARC could not be evaluated now (DNS).
    DmarcTemporary,
    /// SPF `fail` for MAIL FROM, and no DMARC record.
    SpfFail,
    /// SPF could not be evaluated now (DNS).
    SpfTemporary,
    /// The MAIL FROM domain has a null MX (RFC 7505).
    NullMxSender,
    /// The MAIL FROM domain has no MX, A or AAAA record.
    UnroutableSender,
    /// The MAIL FROM domain could not be looked up now (DNS).
    SenderDomainTemporary,
    /// The client's address is listed on a DNSBL zone.
    DnsblListed,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::DmarcReject => "dmarc_reject",
            Reason::DmarcQuarantine => "dmarc_quarantine",
            Reason::DmarcTemporary => "dmarc_temporary",
            Reason::SpfFail => "spf_fail",
            Reason::SpfTemporary => "spf_temporary",
            Reason::NullMxSender => "null_mx_sender",
            Reason::UnroutableSender => "unroutable_sender",
            Reason::SenderDomainTemporary => "sender_domain_temporary",
            Reason::DnsblListed => "dnsbl_listed",
        }
    }
}

/// An SMTP reply: code, enhanced status code (RFC 3463) and text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reply {
    pub code: u16,
    /// "5.7.1", ...: sent after the code when the client negotiated ENHANCEDSTATUSCODES
    /// (RFC 2034), and left out in a connection greeting.
    pub enhanced: &'static str,
    /// One line, printable ASCII only (client-supplied names are filtered before they get here).
    pub text: String,
    pub reason: Reason,
}

impl Reply {
    fn new(code: u16, enhanced: &'static str, reason: Reason, text: String) -> Reply {
        Reply { code, enhanced, text: printable(&text), reason }
    }

    /// `"550 5.7.1 text"`: the reply line without its CRLF.
    pub fn line(&self) -> String {
        format!("{} {} {}", self.code, self.enhanced, self.text)
    }
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    Accept,
    /// Accept, and deliver into the recipient's Junk mailbox.
    AcceptToJunk {
        reason: Reason,
    },
    /// Refuse for good (5yz).
    Reject(Reply),
    /// Ask the client to try again later (4yz).
    TempFail(Reply),
}

impl Decision {
    /// One word per kind, for metric labels and events.
    pub fn label(&self) -> &'static str {
        match self {
            Decision::Accept => "accept",
            Decision::AcceptToJunk { .. } => "junk",
            Decision::Reject(_) => "reject",
            Decision::TempFail(_) => "tempfail",
        }
    }

    pub fn reason(&self) -> Option<Reason> {
        match self {
            Decision::Accept => None,
            Decision::AcceptToJunk { reason } => Some(*reason),
            Decision::Reject(reply) | Decision::TempFail(reply) => Some(reply.reason),
        }
    }

    /// The more severe of two decisions: reject > tempfail > junk > accept (the first wins
    /// a tie). For combining a connect-time decision with the end-of-DATA one.
    pub fn most_severe(self, other: Decision) -> Decision {
        fn rank(d: &Decision) -> u8 {
            match d {
                Decision::Accept => 0,
                Decision::AcceptToJunk { .. } => 1,
                Decision::TempFail(_) => 2,
                Decision::Reject(_) => 3,
            }
        }
        if rank(&other) > rank(&self) {
            other
        } else {
            self
        }
    }
}

/// Applies a failure action: the reply is used only when the action is `Reject`.
fn apply(action: FailureAction, reply: Reply) -> Decision {
    match action {
        FailureAction::Reject => Decision::Reject(reply),
        FailureAction::Junk => Decision::AcceptToJunk { reason: reply.reason },
        FailureAction::Accept => Decision::Accept,
    }
}

/// A temporary failure that would matter: 4yz, unless the operator accepts those.
fn temporary(policy: &Policy, reply: Reply) -> Decision {
    match policy.temp_errors {
        TempErrorAction::TempFail => Decision::TempFail(reply),
        TempErrorAction::Accept => Decision::Accept,
    }
}

/// End of DATA: the message's verdict under the policy.
///
/// DMARC decides when the author domain publishes a record (RFC 7489 §6.6.4); a pass there
/// accepts whatever SPF said. Without a record, an SPF `fail` of MAIL FROM applies.
pub fn decide(verdict: &Verdict, policy: &Policy) -> Decision {
    let dmarc = &verdict.dmarc;
    let domain = &dmarc.from_domain;
    let dmarc_fail_reply = |p: &str, reason| {
        Reply::new(550, "5.7.1", reason, format!("Message refused: it fails the DMARC policy (p={p}) of {domain}"))
    };
    match (dmarc.result, dmarc.policy) {
        (DmarcResult::Pass, _) => return Decision::Accept,
        (DmarcResult::Fail, Some(DmarcPolicy::Reject)) => {
            return apply(policy.dmarc_reject, dmarc_fail_reply("reject", Reason::DmarcReject))
        }
        (DmarcResult::Fail, Some(DmarcPolicy::Quarantine)) => {
            return apply(policy.dmarc_quarantine, dmarc_fail_reply("quarantine", Reason::DmarcQuarantine))
        }
        // p=none: the domain only watches; neither DMARC nor SPF alone refuses its mail.
        (_, Some(DmarcPolicy::None)) => return Decision::Accept,
        (DmarcResult::TempError, policy_known) => {
            // What a definite answer could have led to: the record's own policy, or, when
            // the record itself could not be read, any of them (SPF's included).
            let at_stake = match policy_known {
                Some(DmarcPolicy::Reject) => vec![policy.dmarc_reject],
                Some(DmarcPolicy::Quarantine) => vec![policy.dmarc_quarantine],
                _ => vec![policy.dmarc_reject, policy.dmarc_quarantine, policy.spf_fail],
            };
            if at_stake.iter().all(|a| *a == FailureAction::Accept) {
                return Decision::Accept;
            }
            let text = format!("Temporary DNS failure checking the DMARC policy of {domain}; try again later");
            return temporary(policy, Reply::new(451, "4.7.1", Reason::DmarcTemporary, text));
        }
        // No record, no From domain, or an unusable record or evaluation (RFC 7489 §6.6.3:
        // no policy applies): SPF alone speaks.
        (DmarcResult::None | DmarcResult::PermError | DmarcResult::Fail, _) => {}
    }
    let spf = &verdict.spf_mail_from;
    let ip = verdict.envelope.client_ip;
    match spf.result {
        SpfResult::Fail => {
            let text = format!("SPF check failed: {} does not designate {ip} as a permitted sender", spf.domain);
            apply(policy.spf_fail, Reply::new(550, "5.7.23", Reason::SpfFail, text))
            // RFC 7372 §3.2
        }
        SpfResult::TempError if policy.spf_fail != FailureAction::Accept => {
            let text = format!("Temporary DNS failure checking the SPF record of {}; try again later", spf.domain);
            temporary(policy, Reply::new(451, "4.7.24", Reason::SpfTemporary, text))
            // RFC 7372 §3.2
        }
        _ => Decision::Accept,
    }
}

/// MAIL FROM: can mail to this sender's domain be delivered at all (RFC 7505 §4.2, RFC 5321
/// §5.1)? A sender nobody can answer is refused before the message is taken.
pub fn decide_sender_domain(check: &SenderDomainCheck, policy: &Policy) -> Decision {
    let domain = &check.domain;
    match &check.outcome {
        SenderDomain::NullSender | SenderDomain::AddressLiteral | SenderDomain::Routable => Decision::Accept,
        SenderDomain::NullMx => {
            // RFC 7505 §4.2 gives this code and text.
            apply(
                policy.null_mx_sender,
                Reply::new(550, "5.7.27", Reason::NullMxSender, format!("Sender address has null MX ({domain})")),
            )
        }
        SenderDomain::Unroutable => {
            // RFC 3463 §3.2: X.1.8 "Bad sender's system address".
            let text = format!("Sender domain {domain} has no MX, A or AAAA record");
            apply(policy.unroutable_sender, Reply::new(550, "5.1.8", Reason::UnroutableSender, text))
        }
        SenderDomain::Temporary(_) => {
            if policy.null_mx_sender == FailureAction::Accept && policy.unroutable_sender == FailureAction::Accept {
                return Decision::Accept;
            }
            // RFC 3463 §3.5: X.4.3 "Directory server failure".
            let text = format!("Temporary DNS failure looking up the sender domain {domain}; try again later");
            temporary(policy, Reply::new(451, "4.4.3", Reason::SenderDomainTemporary, text))
        }
    }
}

/// Connect: is the client on a DNSBL zone? A zone that could not be asked does not count
/// (a list's outage must not stop all mail); it is in the checks, for the event.
pub fn decide_dnsbl(checks: &[DnsblCheck], policy: &Policy) -> Decision {
    let Some(listed) = checks.iter().find(|c| matches!(c.result, DnsblResult::Listed { .. })) else {
        return Decision::Accept;
    };
    let text = format!("Client host is listed at {}", listed.zone);
    apply(policy.dnsbl_listed, Reply::new(554, "5.7.1", Reason::DnsblListed, text))
}

/// Reply text is one line of printable ASCII (RFC 5321 §4.2): anything else from a name a
/// client chose becomes '?'.
fn printable(text: &str) -> String {
    text.chars().map(|c| if (' '..='~').contains(&c) { c } else { '?' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::*;

    fn verdict(spf: SpfResult, dmarc: DmarcResult, policy: Option<DmarcPolicy>) -> Verdict {
        Verdict {
            envelope: Envelope {
                client_ip: [192, 0, 2, 1].into(),
                helo: "mail.example.net".into(),
                mail_from: "alice@example.net".into(),
            },
            spf_helo: SpfCheck { result: SpfResult::None, domain: "mail.example.net".into() },
            spf_mail_from: SpfCheck { result: spf, domain: "example.net".into() },
            dkim: vec![],
            dmarc: DmarcCheck {
                result: dmarc,
                from_domain: "example.net".into(),
                policy,
                spf_aligned: false,
                dkim_aligned: false,
                reason: None,
            },
            arc: ArcCheck { result: ArcResult::None, sets: 0, reason: None },
            iprev: IprevCheck { result: IprevResult::Pass, names: vec![] },
        }
    }

    fn reject_code(decision: &Decision) -> (u16, &'static str) {
        match decision {
            Decision::Reject(reply) | Decision::TempFail(reply) => (reply.code, reply.enhanced),
            other => panic!("a refusal expected, got {other:?}"),
        }
    }

    #[test]
    fn dmarc_reject_failure_is_550_5_7_1() {
        let decision =
            decide(&verdict(SpfResult::Fail, DmarcResult::Fail, Some(DmarcPolicy::Reject)), &Policy::default());
        assert_eq!(reject_code(&decision), (550, "5.7.1"));
        assert_eq!(decision.reason(), Some(Reason::DmarcReject));
        assert!(decision.label() == "reject");
    }

    #[test]
    fn dmarc_quarantine_failure_goes_to_junk() {
        let decision =
            decide(&verdict(SpfResult::Pass, DmarcResult::Fail, Some(DmarcPolicy::Quarantine)), &Policy::default());
        assert_eq!(decision, Decision::AcceptToJunk { reason: Reason::DmarcQuarantine });
    }

    #[test]
    fn each_dmarc_switch_is_honoured() {
        let policy =
            Policy { dmarc_reject: FailureAction::Junk, dmarc_quarantine: FailureAction::Reject, ..Policy::default() };
        let rejected = decide(&verdict(SpfResult::Fail, DmarcResult::Fail, Some(DmarcPolicy::Reject)), &policy);
        assert_eq!(rejected, Decision::AcceptToJunk { reason: Reason::DmarcReject });
        let quarantined = decide(&verdict(SpfResult::Fail, DmarcResult::Fail, Some(DmarcPolicy::Quarantine)), &policy);
        assert_eq!(reject_code(&quarantined), (550, "5.7.1"));
        let accept_all = Policy { dmarc_reject: FailureAction::Accept, ..Policy::default() };
        assert_eq!(
            decide(&verdict(SpfResult::Fail, DmarcResult::Fail, Some(DmarcPolicy::Reject)), &accept_all),
            Decision::Accept
        );
    }

    #[test]
    fn dmarc_pass_accepts_whatever_spf_said() {
        let decision =
            decide(&verdict(SpfResult::Fail, DmarcResult::Pass, Some(DmarcPolicy::Reject)), &Policy::default());
        assert_eq!(decision, Decision::Accept);
    }

    #[test]
    fn p_none_never_refuses_even_on_spf_fail() {
        let decision =
            decide(&verdict(SpfResult::Fail, DmarcResult::Fail, Some(DmarcPolicy::None)), &Policy::default());
        assert_eq!(decision, Decision::Accept);
    }

    #[test]
    fn spf_fail_without_dmarc_is_550_5_7_23_unless_switched() {
        let v = verdict(SpfResult::Fail, DmarcResult::None, None);
        assert_eq!(reject_code(&decide(&v, &Policy::default())), (550, "5.7.23"));
        let junk = Policy { spf_fail: FailureAction::Junk, ..Policy::default() };
        assert_eq!(decide(&v, &junk), Decision::AcceptToJunk { reason: Reason::SpfFail });
        for soft in [SpfResult::SoftFail, SpfResult::Neutral, SpfResult::None, SpfResult::PermError, SpfResult::Pass] {
            assert_eq!(
                decide(&verdict(soft, DmarcResult::None, None), &Policy::default()),
                Decision::Accept,
                "{soft:?}"
            );
        }
    }

    #[test]
    fn temporary_failures_are_451_only_when_they_could_matter() {
        let spf_temp = verdict(SpfResult::TempError, DmarcResult::None, None);
        assert_eq!(reject_code(&decide(&spf_temp, &Policy::default())), (451, "4.7.24"));
        let spf_ignored = Policy { spf_fail: FailureAction::Accept, ..Policy::default() };
        assert_eq!(decide(&spf_temp, &spf_ignored), Decision::Accept);

        let dmarc_temp = verdict(SpfResult::Pass, DmarcResult::TempError, None);
        assert_eq!(reject_code(&decide(&dmarc_temp, &Policy::default())), (451, "4.7.1"));
        let known_reject = verdict(SpfResult::Pass, DmarcResult::TempError, Some(DmarcPolicy::Reject));
        assert_eq!(reject_code(&decide(&known_reject, &Policy::default())), (451, "4.7.1"));
        let lenient = Policy { dmarc_reject: FailureAction::Accept, ..Policy::default() };
        assert_eq!(decide(&known_reject, &lenient), Decision::Accept);

        let accept_temp = Policy { temp_errors: TempErrorAction::Accept, ..Policy::default() };
        assert_eq!(decide(&dmarc_temp, &accept_temp), Decision::Accept);
    }

    #[test]
    fn sender_domain_outcomes() {
        let check = |outcome| SenderDomainCheck { domain: "example.net".into(), outcome };
        let policy = Policy::default();
        assert_eq!(decide_sender_domain(&check(SenderDomain::Routable), &policy), Decision::Accept);
        assert_eq!(decide_sender_domain(&check(SenderDomain::NullSender), &policy), Decision::Accept);
        assert_eq!(reject_code(&decide_sender_domain(&check(SenderDomain::NullMx), &policy)), (550, "5.7.27"));
        assert_eq!(reject_code(&decide_sender_domain(&check(SenderDomain::Unroutable), &policy)), (550, "5.1.8"));
        let temp = check(SenderDomain::Temporary("timeout".into()));
        assert_eq!(reject_code(&decide_sender_domain(&temp, &policy)), (451, "4.4.3"));
        let off = Policy { null_mx_sender: FailureAction::Accept, unroutable_sender: FailureAction::Accept, ..policy };
        assert_eq!(decide_sender_domain(&check(SenderDomain::NullMx), &off), Decision::Accept);
        assert_eq!(decide_sender_domain(&temp, &off), Decision::Accept);
    }

    #[test]
    fn dnsbl_listing_is_554_and_a_failed_zone_does_not_count() {
        let listed = DnsblCheck {
            zone: "bl.example".into(),
            result: DnsblResult::Listed { codes: vec![[127, 0, 0, 2].into()] },
        };
        let failed = DnsblCheck { zone: "down.example".into(), result: DnsblResult::Failed("timeout".into()) };
        assert_eq!(decide_dnsbl(std::slice::from_ref(&failed), &Policy::default()), Decision::Accept);
        let decision = decide_dnsbl(&[failed, listed], &Policy::default());
        assert_eq!(reject_code(&decision), (554, "5.7.1"));
        let Decision::Reject(reply) = decision else { unreachable!() };
        assert!(reply.text.contains("bl.example"));
    }

    #[test]
    fn reply_text_is_printable_ascii() {
        let reply = Reply::new(550, "5.7.1", Reason::SpfFail, "bad\r\nname é".into());
        assert_eq!(reply.text, "bad??name ?");
        assert_eq!(reply.line(), "550 5.7.1 bad??name ?");
    }

    #[test]
    fn most_severe_keeps_the_harshest() {
        let junk = Decision::AcceptToJunk { reason: Reason::DnsblListed };
        assert_eq!(Decision::Accept.most_severe(junk.clone()), junk);
        let reject = Decision::Reject(Reply::new(550, "5.7.1", Reason::DmarcReject, "x".into()));
        assert_eq!(junk.clone().most_severe(reject.clone()), reject);
        assert_eq!(reject.clone().most_severe(junk), reject);
    }
}
