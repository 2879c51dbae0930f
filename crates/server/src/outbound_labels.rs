//! How the queue runner labels what `delivery` reports, for the `delivery_attempt` event and
//! so for the metrics: each recipient's result and the reason for it, and the TLS policy and
//! outcome of a connection. Kept apart from the runner so that the mapping is tested on its
//! own, and from `delivery`, whose reports stay in RFC terms rather than metric labels.

use std::collections::BTreeMap;

use portcullis_delivery::{AttemptOutcome, AttemptRecord, CertificateCheck, PolicyKind, Why};
use portcullis_events::{DeliveryReason, DeliveryResult, OutboundTlsPolicy, OutboundTlsResult, RecipientOutcomes};
use portcullis_smtp_client::Disposition;

/// A recipient's result and reason; `given_up`: a temporary failure now ends its time in the
/// queue.
pub fn recipient(disposition: Disposition, why: &Why, given_up: bool) -> (DeliveryResult, DeliveryReason) {
    let result = match disposition {
        Disposition::Delivered => return (DeliveryResult::Delivered, DeliveryReason::Delivered),
        Disposition::Permanent => DeliveryResult::Failed,
        Disposition::Temporary if given_up => DeliveryResult::Failed,
        Disposition::Temporary => DeliveryResult::Deferred,
    };
    let reason = match (why, disposition) {
        (Why::Route(_), _) => DeliveryReason::NoRoute,
        (Why::Policy(_), _) => DeliveryReason::TlsPolicy,
        (_, Disposition::Permanent) => DeliveryReason::Rejected,
        _ if given_up => DeliveryReason::Expired,
        _ => DeliveryReason::Deferred,
    };
    (result, reason)
}

/// The TLS policy of a connection (or of an exchanger the policy skipped) and what came of it.
pub fn tls(record: &AttemptRecord) -> (OutboundTlsPolicy, OutboundTlsResult) {
    let policy = match record.policy {
        PolicyKind::None => OutboundTlsPolicy::None,
        PolicyKind::MtaStsTesting => OutboundTlsPolicy::MtaStsTesting,
        PolicyKind::MtaStsEnforce => OutboundTlsPolicy::MtaStsEnforce,
        PolicyKind::Dane => OutboundTlsPolicy::Dane,
        PolicyKind::Relay => OutboundTlsPolicy::Relay,
    };
    // A failure is also reported where the policy only asks for reports (opportunistic TLS
    // with a self-signed certificate, MTA-STS testing): what counts is the connection's TLS.
    let unmet = record.tls_failure.is_some() || matches!(record.outcome, AttemptOutcome::Skipped(_));
    let result = match (&record.tls, &record.certificate) {
        (Some(_), CertificateCheck::Valid) => OutboundTlsResult::Verified,
        (Some(_), _) => OutboundTlsResult::Encrypted,
        (None, _) if unmet && policy != OutboundTlsPolicy::None => OutboundTlsResult::Failed,
        (None, _) => OutboundTlsResult::Plaintext,
    };
    (policy, result)
}

/// Recipients counted by result and reason, for the event.
#[derive(Default)]
pub struct Tally(BTreeMap<(DeliveryResult, DeliveryReason), usize>);

impl Tally {
    pub fn add(&mut self, labels: (DeliveryResult, DeliveryReason)) {
        *self.0.entry(labels).or_default() += 1;
    }

    pub fn outcomes(self) -> Vec<RecipientOutcomes> {
        self.0.into_iter().map(|((result, reason), count)| RecipientOutcomes { result, reason, count }).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_delivery::route::RouteError;
    use portcullis_delivery::{TlsDetails, TlsFailure};
    use portcullis_smtp_client::{LocalReason, Reason};

    #[test]
    fn each_recipient_gets_its_result_and_reason() {
        use DeliveryReason as R;
        use DeliveryResult::{Deferred, Delivered, Failed};
        use Disposition::{Delivered as Ok, Permanent, Temporary};
        let smtp = Why::Smtp(Reason::Local(LocalReason::NeedsSmtpUtf8));
        let route = Why::Route(RouteError::NoSuchDomain);
        let policy = Why::Policy("no exchanger matches the MTA-STS policy".into());
        assert_eq!(recipient(Ok, &smtp, true), (Delivered, R::Delivered));
        assert_eq!(recipient(Permanent, &smtp, false), (Failed, R::Rejected));
        assert_eq!(recipient(Temporary, &smtp, false), (Deferred, R::Deferred));
        assert_eq!(recipient(Temporary, &smtp, true), (Failed, R::Expired));
        assert_eq!(recipient(Temporary, &Why::NotAttempted, false), (Deferred, R::Deferred));
        assert_eq!(recipient(Permanent, &route, false), (Failed, R::NoRoute));
        assert_eq!(recipient(Temporary, &route, false), (Deferred, R::NoRoute));
        assert_eq!(recipient(Temporary, &policy, true), (Failed, R::TlsPolicy));
    }

    fn record(
        policy: PolicyKind,
        tls: bool,
        certificate: CertificateCheck,
        failure: Option<TlsFailure>,
    ) -> AttemptRecord {
        AttemptRecord {
            domain: "example.com".into(),
            host: "mx.example.com".into(),
            address: None,
            policy,
            tls: tls.then(|| TlsDetails { version: "TLSv1.3".into(), cipher: "TLS13_AES_128_GCM_SHA256".into() }),
            certificate,
            tls_failure: failure,
            outcome: AttemptOutcome::Completed,
            messages: 1,
        }
    }

    #[test]
    fn each_connection_gets_its_policy_and_tls_result() {
        use OutboundTlsResult::*;
        let plain = record(PolicyKind::None, false, CertificateCheck::NotChecked, None);
        assert_eq!(tls(&plain), (OutboundTlsPolicy::None, Plaintext));
        let opportunistic = record(PolicyKind::None, true, CertificateCheck::NotChecked, None);
        assert_eq!(tls(&opportunistic), (OutboundTlsPolicy::None, Encrypted));
        let sts = record(PolicyKind::MtaStsEnforce, true, CertificateCheck::Valid, None);
        assert_eq!(tls(&sts), (OutboundTlsPolicy::MtaStsEnforce, Verified));
        let testing = record(
            PolicyKind::MtaStsTesting,
            true,
            CertificateCheck::Invalid(TlsFailure::CertificateExpired),
            Some(TlsFailure::CertificateExpired),
        );
        assert_eq!(tls(&testing), (OutboundTlsPolicy::MtaStsTesting, Encrypted), "TLS, unverified: only reported");
        let untrusted = record(
            PolicyKind::None,
            true,
            CertificateCheck::Invalid(TlsFailure::CertificateNotTrusted),
            Some(TlsFailure::CertificateNotTrusted),
        );
        assert_eq!(tls(&untrusted), (OutboundTlsPolicy::None, Encrypted));
        let stripped =
            record(PolicyKind::None, false, CertificateCheck::NotChecked, Some(TlsFailure::StarttlsNotSupported));
        assert_eq!(tls(&stripped), (OutboundTlsPolicy::None, Plaintext), "opportunistic: plaintext is allowed");
        let enforced = record(
            PolicyKind::MtaStsEnforce,
            false,
            CertificateCheck::NotChecked,
            Some(TlsFailure::StarttlsNotSupported),
        );
        assert_eq!(tls(&enforced), (OutboundTlsPolicy::MtaStsEnforce, Failed));
        let mut skipped = record(PolicyKind::Dane, false, CertificateCheck::NotChecked, None);
        skipped.outcome = AttemptOutcome::Skipped("no usable TLSA answer".into());
        assert_eq!(tls(&skipped), (OutboundTlsPolicy::Dane, Failed));
        let relay = record(PolicyKind::Relay, true, CertificateCheck::Valid, None);
        assert_eq!(tls(&relay), (OutboundTlsPolicy::Relay, Verified));
    }

    #[test]
    fn the_tally_counts_by_result_and_reason() {
        let mut tally = Tally::default();
        tally.add((DeliveryResult::Deferred, DeliveryReason::Deferred));
        tally.add((DeliveryResult::Delivered, DeliveryReason::Delivered));
        tally.add((DeliveryResult::Deferred, DeliveryReason::Deferred));
        let outcomes = tally.outcomes();
        assert_eq!(outcomes.len(), 2);
        assert_eq!(
            outcomes[1],
            RecipientOutcomes { result: DeliveryResult::Deferred, reason: DeliveryReason::Deferred, count: 2 }
        );
    }
}
