//! TLS reporting (RFC 8460) as a pure aggregation: the attempt records of a reporting period,
//! summed per policy domain and policy type into successful and failed session counts with
//! failure details, and written as the report's JSON (§4.4), one report per policy domain.
//! `policy_record` reads where a domain wants its reports (`_smtp._tls` TXT, §3); `mail`
//! wraps a report as the message of §5.3 (gzip, multipart/report). The server's reporting
//! task keeps the aggregate of the period and queues the messages.

mod mail;
mod policy_record;

pub use mail::{report_mail, ReportMail};
pub use policy_record::mailto_recipients;

use crate::record::AttemptRecord;
use crate::tls::{PolicyKind, TlsFailure};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::SystemTime;

/// Sessions summed over a period.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TlsReportAggregate {
    policies: BTreeMap<(String, &'static str), Counts>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Counts {
    successful: u64,
    failed: u64,
    mx_hosts: Vec<String>,
    /// (result type, receiving MX, receiving IP) -> sessions.
    failures: BTreeMap<(String, String, String), u64>,
}

#[derive(Serialize)]
struct Report<'a> {
    #[serde(rename = "organization-name")]
    organization: &'a str,
    #[serde(rename = "date-range")]
    date_range: DateRange,
    #[serde(rename = "contact-info")]
    contact: &'a str,
    #[serde(rename = "report-id")]
    report_id: &'a str,
    policies: Vec<PolicyReport<'a>>,
}

#[derive(Serialize)]
struct DateRange {
    #[serde(rename = "start-datetime")]
    start: String,
    #[serde(rename = "end-datetime")]
    end: String,
}

#[derive(Serialize)]
struct PolicyReport<'a> {
    policy: PolicyDescription<'a>,
    summary: Summary,
    #[serde(rename = "failure-details", skip_serializing_if = "Vec::is_empty")]
    failure_details: Vec<FailureDetail<'a>>,
}

#[derive(Serialize)]
struct PolicyDescription<'a> {
    #[serde(rename = "policy-type")]
    policy_type: &'a str,
    #[serde(rename = "policy-domain")]
    policy_domain: &'a str,
    #[serde(rename = "mx-host", skip_serializing_if = "<[String]>::is_empty")]
    mx_host: &'a [String],
}

#[derive(Serialize)]
struct Summary {
    #[serde(rename = "total-successful-session-count")]
    successful: u64,
    #[serde(rename = "total-failure-session-count")]
    failed: u64,
}

#[derive(Serialize)]
struct FailureDetail<'a> {
    #[serde(rename = "result-type")]
    result_type: &'a str,
    #[serde(rename = "receiving-mx-hostname")]
    mx: &'a str,
    #[serde(rename = "receiving-ip", skip_serializing_if = "str::is_empty")]
    ip: &'a str,
    #[serde(rename = "failed-session-count")]
    count: u64,
}

impl TlsReportAggregate {
    pub fn new() -> TlsReportAggregate {
        TlsReportAggregate::default()
    }

    /// Adds one attempt. Smart-host sessions belong to no recipient domain's policy and are
    /// left out; so are connections that never reached TLS for reasons TLS-RPT does not count
    /// (refused, timed out) unless a TLS failure was recorded.
    pub fn record(&mut self, attempt: &AttemptRecord) {
        let policy_fetch =
            matches!(attempt.tls_failure, Some(TlsFailure::StsPolicyFetchError | TlsFailure::StsPolicyInvalid));
        let policy_type = match attempt.policy {
            PolicyKind::Relay => return,
            _ if policy_fetch => "sts",
            PolicyKind::MtaStsTesting | PolicyKind::MtaStsEnforce => "sts",
            PolicyKind::Dane => "tlsa",
            PolicyKind::None => "no-policy-found",
        };
        let counts = self.policies.entry((attempt.domain.clone(), policy_type)).or_default();
        if !counts.mx_hosts.contains(&attempt.host) && attempt.address.is_some() {
            counts.mx_hosts.push(attempt.host.clone());
        }
        match attempt.tls_failure {
            Some(failure) => {
                counts.failed += 1;
                let ip = attempt.address.map(|a| a.ip().to_string()).unwrap_or_default();
                *counts.failures.entry((name(failure), attempt.host.clone(), ip)).or_default() += 1;
            }
            None if attempt.tls.is_some() => counts.successful += 1,
            None => {}
        }
    }

    /// Whether nothing was recorded (no report is owed).
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// (successful, failed) sessions over every policy domain and type.
    pub fn totals(&self) -> (u64, u64) {
        self.policies.values().fold((0, 0), |(s, f), c| (s + c.successful, f + c.failed))
    }

    /// The policy domains with sessions to report.
    pub fn domains(&self) -> Vec<String> {
        let mut domains: Vec<String> = self.policies.keys().map(|(d, _)| d.clone()).collect();
        domains.dedup();
        domains
    }

    /// The part of this aggregate about one policy domain: that domain's report (RFC 8460
    /// §4: each report is about the policies of one domain, and goes to that domain).
    pub fn for_domain(&self, domain: &str) -> TlsReportAggregate {
        TlsReportAggregate {
            policies: self
                .policies
                .iter()
                .filter(|((d, _), _)| d == domain)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// (successful, failed) sessions of a policy domain and type ("sts", "tlsa",
    /// "no-policy-found").
    pub fn counts(&self, domain: &str, policy_type: &str) -> (u64, u64) {
        self.policies
            .iter()
            .find(|((d, t), _)| d == domain && *t == policy_type)
            .map_or((0, 0), |(_, c)| (c.successful, c.failed))
    }

    /// The report of RFC 8460 §4.4 as JSON.
    pub fn to_json(
        &self,
        organization: &str,
        contact: &str,
        report_id: &str,
        start: SystemTime,
        end: SystemTime,
    ) -> String {
        let policies = self
            .policies
            .iter()
            .map(|((domain, policy_type), c)| PolicyReport {
                policy: PolicyDescription { policy_type, policy_domain: domain, mx_host: &c.mx_hosts },
                summary: Summary { successful: c.successful, failed: c.failed },
                failure_details: c
                    .failures
                    .iter()
                    .map(|((result_type, mx, ip), count)| FailureDetail { result_type, mx, ip, count: *count })
                    .collect(),
            })
            .collect();
        let report = Report {
            organization,
            date_range: DateRange {
                start: humantime::format_rfc3339_seconds(start).to_string(),
                end: humantime::format_rfc3339_seconds(end).to_string(),
            },
            contact,
            report_id,
            policies,
        };
        serde_json::to_string_pretty(&report).unwrap_or_default()
    }
}

fn name(failure: TlsFailure) -> String {
    failure.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{AttemptOutcome, TlsDetails};
    use crate::tls::CertificateCheck;

    fn attempt(domain: &str, policy: PolicyKind, tls_failure: Option<TlsFailure>) -> AttemptRecord {
        AttemptRecord {
            domain: domain.into(),
            host: "mx.example.net".into(),
            address: Some("192.0.2.1:25".parse().unwrap()),
            policy,
            tls: tls_failure.is_none().then(|| TlsDetails { version: "TLSv1.3".into(), cipher: "X".into() }),
            certificate: CertificateCheck::NotChecked,
            tls_failure,
            outcome: AttemptOutcome::Completed,
            messages: 1,
        }
    }

    #[test]
    fn sessions_are_summed_per_domain_and_policy_type() {
        let mut agg = TlsReportAggregate::new();
        agg.record(&attempt("example.net", PolicyKind::MtaStsEnforce, None));
        agg.record(&attempt("example.net", PolicyKind::MtaStsEnforce, None));
        agg.record(&attempt("example.net", PolicyKind::MtaStsEnforce, Some(TlsFailure::CertificateExpired)));
        agg.record(&attempt("example.net", PolicyKind::Dane, Some(TlsFailure::TlsaInvalid)));
        agg.record(&attempt("other.example", PolicyKind::None, Some(TlsFailure::StarttlsNotSupported)));
        agg.record(&attempt("relay", PolicyKind::Relay, None));
        assert_eq!(agg.counts("example.net", "sts"), (2, 1));
        assert_eq!(agg.counts("example.net", "tlsa"), (0, 1));
        assert_eq!(agg.counts("other.example", "no-policy-found"), (0, 1));
        assert_eq!(agg.counts("relay", "no-policy-found"), (0, 0));
        let json =
            agg.to_json("Portcullis", "postmaster@example.org", "r1", SystemTime::UNIX_EPOCH, SystemTime::UNIX_EPOCH);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["date-range"]["start-datetime"], "1970-01-01T00:00:00Z");
        let sts = v["policies"].as_array().unwrap().iter().find(|p| p["policy"]["policy-type"] == "sts").unwrap();
        assert_eq!(sts["summary"]["total-successful-session-count"], 2);
        assert_eq!(sts["failure-details"][0]["result-type"], "certificate-expired");
        assert_eq!(sts["failure-details"][0]["receiving-ip"], "192.0.2.1");
        assert_eq!(sts["policy"]["mx-host"][0], "mx.example.net");
        assert_eq!(agg.domains(), ["example.net", "other.example"]);
        let one = agg.for_domain("other.example");
        assert_eq!(
            (one.counts("other.example", "no-policy-found"), one.counts("example.net", "sts")),
            ((0, 1), (0, 0))
        );
        assert!(!one.is_empty() && TlsReportAggregate::new().is_empty());
        assert_eq!((agg.totals(), one.totals()), ((2, 3), (0, 1)));
    }
}
