//! From what the TLS probes saw to which versions are accepted and what that means, as a pure
//! function: every rule that turns a ServerHello or an alert into a finding is here, and unit
//! tested with made-up answers.

use crate::hello::{version_name, Answer, SSL3, TLS10, TLS11, TLS12, TLS13};
use crate::report::{Finding, Kind};
use crate::suites::{self, Offer};

/// The hand-built probes, in the order they are sent.
pub const PROBES: [(u16, Offer); 8] = [
    (TLS12, Offer::AnyFor(TLS12)),
    (TLS11, Offer::AnyFor(TLS11)),
    (TLS10, Offer::AnyFor(TLS10)),
    (SSL3, Offer::AnyFor(SSL3)),
    (TLS12, Offer::NonAead),
    (TLS12, Offer::NonForwardSecret),
    (TLS12, Offer::Obsolete),
    (TLS12, Offer::WithoutEms),
];

pub fn probe_name(version: u16, offer: Offer) -> String {
    match offer {
        Offer::AnyFor(_) => version_name(version),
        Offer::NonAead => "non-AEAD suite".into(),
        Offer::NonForwardSecret => "static-RSA suite".into(),
        Offer::Obsolete => "obsolete suite".into(),
        Offer::WithoutEms => "TLSv1.2 without EMS".into(),
    }
}

/// One probe's answer, or why there was none (it could not connect, STARTTLS failed).
pub type ProbeAnswer = (u16, Offer, Result<Answer, String>);

/// What was seen on one port.
pub struct Observed<'a> {
    pub answers: &'a [ProbeAnswer],
    /// The version a modern client (rustls, offering 1.3 and 1.2) got, if its handshake worked.
    pub negotiated: Option<u16>,
    /// Why that handshake failed, if it did.
    pub main_error: Option<&'a str>,
    /// TLS was reached through STARTTLS (not implicit).
    pub starttls: bool,
}

pub struct Verdict {
    /// SSLv3 .. TLS 1.3: accepted, refused, or unknown.
    pub versions: Vec<(u16, Option<bool>)>,
    /// Some version was accepted.
    pub speaks_tls: bool,
    /// Some probe got a TLS answer at all (a ServerHello or an alert).
    pub tls_answered: bool,
    pub findings: Vec<Finding>,
    pub notes: Vec<String>,
}

pub fn judge(port: u16, seen: &Observed) -> Verdict {
    let answer = |version: u16, offer: Offer| {
        seen.answers.iter().find(|(v, o, _)| *v == version && *o == offer).map(|(_, _, a)| a)
    };
    // Accepted: a ServerHello for exactly that version, with a suite from the offer (a server
    // that answers with something else refused what was asked).
    let accepted = |version: u16, offer: Offer| match answer(version, offer) {
        Some(Ok(Answer::Hello { version: got, suite, .. })) if *got == version && offer.contains(*suite) => {
            Some(*suite)
        }
        _ => None,
    };
    let verdict = |version: u16| -> Option<bool> {
        if accepted(version, Offer::AnyFor(version)).is_some() || seen.negotiated == Some(version) {
            Some(true)
        } else if matches!(
            answer(version, Offer::AnyFor(version)),
            Some(Ok(Answer::Hello { .. } | Answer::Alert { .. } | Answer::Closed))
        ) {
            Some(false)
        } else {
            None
        }
    };
    let tls13 = match seen.negotiated {
        Some(TLS13) => Some(true),
        Some(_) => Some(false), // rustls offered 1.3, the server chose 1.2
        None => None,
    };
    let versions = vec![
        (SSL3, verdict(SSL3)),
        (TLS10, verdict(TLS10)),
        (TLS11, verdict(TLS11)),
        (TLS12, verdict(TLS12)),
        (TLS13, tls13),
    ];
    let speaks_tls = versions.iter().any(|(_, v)| *v == Some(true));
    let tls_answered =
        seen.answers.iter().any(|(_, _, a)| matches!(a, Ok(Answer::Hello { .. } | Answer::Alert { .. })));

    let mut findings = Vec::new();
    let mut notes = Vec::new();
    for (version, offer, a) in seen.answers {
        match a {
            Err(e) => notes.push(format!("{} probe inconclusive: {e}", probe_name(*version, *offer))),
            Ok(Answer::NotTls) => notes.push(format!("{} probe: the answer was not TLS", probe_name(*version, *offer))),
            _ => {}
        }
    }
    let why = seen.main_error.unwrap_or("no handshake was tried");
    if !speaks_tls {
        let (kind, title) = if seen.starttls {
            (Kind::StartTlsFailed, format!("STARTTLS is accepted but no TLS version works ({why})"))
        } else {
            (Kind::NoModernTls, format!("No TLS handshake succeeded ({why})"))
        };
        findings.push(Finding::new(port, kind, title));
        return Verdict { versions, speaks_tls, tls_answered, findings, notes };
    }

    for (version, kind) in [(SSL3, Kind::Ssl3), (TLS10, Kind::Tls10), (TLS11, Kind::Tls11)] {
        if let Some(suite) = accepted(version, Offer::AnyFor(version)) {
            let title = format!("{} is accepted (the server chose {})", version_name(version), suites::name(suite));
            findings.push(Finding::new(port, kind, title));
        }
    }
    let tls12 = verdict(TLS12) == Some(true);
    if !tls12 && tls13 != Some(true) {
        findings.push(Finding::new(
            port,
            Kind::NoModernTls,
            format!("Neither TLS 1.2 nor TLS 1.3 is accepted ({why})"),
        ));
    }
    if tls12 && tls13 == Some(false) {
        findings.push(Finding::new(port, Kind::NoTls13, "TLS 1.3 is not offered: a client offering it got TLS 1.2"));
    }
    if let Some(suite) = accepted(TLS12, Offer::NonAead) {
        let title = format!(
            "TLS 1.2 accepts suites without AEAD (offered only those, the server chose {})",
            suites::name(suite)
        );
        findings.push(Finding::new(port, Kind::NonAeadSuites, title));
    }
    if let Some(suite) = accepted(TLS12, Offer::NonForwardSecret) {
        let title = format!(
            "TLS 1.2 accepts static-RSA key exchange, without forward secrecy (the server chose {})",
            suites::name(suite)
        );
        findings.push(Finding::new(port, Kind::NonForwardSecretSuites, title));
    }
    // Obsolete suites: their own probe, or picked in a legacy-version probe (which offers them too).
    let obsolete = accepted(TLS12, Offer::Obsolete).map(|suite| (TLS12, suite)).or_else(|| {
        seen.answers.iter().find_map(|(offered, _, a)| match a {
            Ok(Answer::Hello { version, suite, .. })
                if version == offered && suites::by_id(*suite).is_some_and(|s| s.obsolete()) =>
            {
                Some((*version, *suite))
            }
            _ => None,
        })
    });
    if let Some((version, suite)) = obsolete {
        let title = format!("An obsolete suite is accepted: {} with {}", suites::name(suite), version_name(version));
        findings.push(Finding::new(port, Kind::ObsoleteSuites, title));
    }
    // RFC 7627: without the extended master secret, a man in the middle can make two TLS 1.2
    // sessions share their keys (the triple handshake), and channel bindings such as
    // SCRAM-SHA-256-PLUS's bind nothing.
    if tls12 {
        let ems_answered = match answer(TLS12, Offer::AnyFor(TLS12)) {
            Some(Ok(Answer::Hello { version: TLS12, ems, .. })) => Some(*ems),
            _ => None,
        };
        if ems_answered == Some(false) {
            let title = "TLS 1.2 without the extended master secret: offered it, the server did not take it up";
            findings.push(Finding::new(port, Kind::NoExtendedMasterSecret, title));
        } else if let Some(suite) = accepted(TLS12, Offer::WithoutEms) {
            let title = format!(
                "TLS 1.2 is accepted from a client that does not offer the extended master secret (the server chose {})",
                suites::name(suite)
            );
            findings.push(Finding::new(port, Kind::Tls12WithoutEms, title));
        }
    }
    if let Some(e) = seen.main_error {
        if tls12 || tls13 == Some(true) {
            notes.push(format!("a modern client's handshake failed: {e}"));
        }
    }
    Verdict { versions, speaks_tls, tls_answered, findings, notes }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(version: u16, suite: u16) -> Result<Answer, String> {
        Ok(Answer::Hello { version, suite, ems: false, certificates: vec![] })
    }

    /// A TLS 1.2 ServerHello that takes up the extended master secret.
    fn hello_ems(suite: u16) -> Result<Answer, String> {
        Ok(Answer::Hello { version: TLS12, suite, ems: true, certificates: vec![] })
    }

    fn alert() -> Result<Answer, String> {
        Ok(Answer::Alert { level: 2, description: 40 })
    }

    /// Answers for the eight probes, in PROBES order.
    fn answers(list: [Result<Answer, String>; 8]) -> Vec<ProbeAnswer> {
        PROBES.iter().zip(list).map(|((v, o), a)| (*v, *o, a)).collect()
    }

    fn ids(v: &Verdict) -> Vec<&'static str> {
        v.findings.iter().map(|f| f.id).collect()
    }

    fn accepted(v: &Verdict) -> Vec<Option<bool>> {
        v.versions.iter().map(|(_, ok)| *ok).collect()
    }

    #[test]
    fn a_modern_server_is_clean() {
        // Portcullis: the extended master secret taken up, and TLS 1.2 without it refused.
        let a = answers([hello_ems(0xC02F), alert(), alert(), alert(), alert(), alert(), alert(), alert()]);
        let v = judge(993, &Observed { answers: &a, negotiated: Some(TLS13), main_error: None, starttls: false });
        assert!(v.findings.is_empty() && v.notes.is_empty());
        assert_eq!(accepted(&v), [Some(false), Some(false), Some(false), Some(true), Some(true)]);
    }

    #[test]
    fn tls10_with_a_cbc_suite_shows_in_three_findings() {
        let a = answers([
            hello_ems(0xC02B),
            hello(TLS11, 0xC009),
            hello(TLS10, 0xC009),
            Ok(Answer::Closed),
            hello_ems(0xC009),
            alert(),
            alert(),
            alert(),
        ]);
        let v = judge(993, &Observed { answers: &a, negotiated: Some(TLS13), main_error: None, starttls: false });
        assert_eq!(ids(&v), ["tls1.0-accepted", "tls1.1-accepted", "non-aead-cipher-accepted"]);
        assert!(v.findings[0].title.contains("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"));
    }

    #[test]
    fn an_old_server_that_only_knows_tls10_and_rc4() {
        // It answers every hello with its one version; only the TLS 1.0 answer is acceptance.
        let a = answers([
            hello(TLS10, 0x0005),
            hello(TLS10, 0x0005),
            hello(TLS10, 0x0005),
            Ok(Answer::Alert { level: 2, description: 70 }),
            hello(TLS10, 0x002F),
            hello(TLS10, 0x002F),
            hello(TLS10, 0x0005),
            hello(TLS10, 0x0005),
        ]);
        let seen =
            Observed { answers: &a, negotiated: None, main_error: Some("peer is incompatible"), starttls: false };
        let v = judge(995, &seen);
        assert_eq!(ids(&v), ["tls1.0-accepted", "no-tls1.2-or-1.3", "obsolete-cipher-accepted"]);
        assert_eq!(accepted(&v), [Some(false), Some(true), Some(false), Some(false), None]);
        assert!(v.findings[2].title.contains("TLS_RSA_WITH_RC4_128_SHA with TLSv1.0"));
    }

    #[test]
    fn tls12_only_with_rsa_key_exchange() {
        let a = answers([hello_ems(0xC030), alert(), alert(), alert(), alert(), hello_ems(0x009D), alert(), alert()]);
        let v = judge(465, &Observed { answers: &a, negotiated: Some(TLS12), main_error: None, starttls: false });
        assert_eq!(ids(&v), ["no-tls1.3", "non-forward-secret-cipher-accepted"]);
    }

    #[test]
    fn a_suite_that_was_not_offered_is_not_acceptance() {
        let a = answers([hello_ems(0xC02F), alert(), alert(), alert(), hello_ems(0xC02F), alert(), alert(), alert()]);
        let v = judge(465, &Observed { answers: &a, negotiated: Some(TLS13), main_error: None, starttls: false });
        assert!(v.findings.is_empty(), "{:?}", ids(&v));
    }

    #[test]
    fn starttls_that_leads_nowhere() {
        let closed = || Ok(Answer::Closed);
        let a = answers([closed(), closed(), closed(), closed(), closed(), closed(), closed(), closed()]);
        let seen = Observed { answers: &a, negotiated: None, main_error: Some("handshake eof"), starttls: true };
        let v = judge(587, &seen);
        assert_eq!(ids(&v), ["starttls-failed"]);
        assert!(!v.speaks_tls && !v.tls_answered);
        assert!(v.findings[0].title.contains("handshake eof"));
    }

    #[test]
    fn inconclusive_probes_are_notes_not_findings() {
        let a = answers([
            hello_ems(0xC02F),
            Err("cannot connect again".into()),
            Ok(Answer::NotTls),
            alert(),
            alert(),
            alert(),
            alert(),
            alert(),
        ]);
        let v = judge(993, &Observed { answers: &a, negotiated: Some(TLS13), main_error: None, starttls: false });
        assert!(v.findings.is_empty());
        assert_eq!(accepted(&v), [Some(false), None, None, Some(true), Some(true)]);
        assert_eq!(v.notes.len(), 2, "{:?}", v.notes);
    }

    #[test]
    fn tls12_without_the_extended_master_secret() {
        // OpenSSL's default: takes it up when offered, goes on without it when not.
        let a =
            answers([hello_ems(0xC02F), alert(), alert(), alert(), alert(), alert(), alert(), hello(TLS12, 0xC030)]);
        let v = judge(993, &Observed { answers: &a, negotiated: Some(TLS13), main_error: None, starttls: false });
        assert_eq!(ids(&v), ["tls1.2-without-ems-accepted"]);
        assert!(v.findings[0].title.contains("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"), "{}", v.findings[0].title);
        assert_eq!(v.findings[0].severity, crate::report::Severity::Low);
        // A server that does not know it at all: one finding, the graver one.
        let a =
            answers([hello(TLS12, 0xC02F), alert(), alert(), alert(), alert(), alert(), alert(), hello(TLS12, 0xC02F)]);
        let v = judge(993, &Observed { answers: &a, negotiated: Some(TLS13), main_error: None, starttls: false });
        assert_eq!(ids(&v), ["no-extended-master-secret"]);
        assert_eq!(v.findings[0].severity, crate::report::Severity::Medium);
        // TLS 1.3 only: nothing to say about TLS 1.2.
        let a = answers([alert(), alert(), alert(), alert(), alert(), alert(), alert(), alert()]);
        let v = judge(993, &Observed { answers: &a, negotiated: Some(TLS13), main_error: None, starttls: false });
        assert!(v.findings.is_empty(), "{:?}", ids(&v));
    }
}
