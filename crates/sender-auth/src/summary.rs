//! One flat record per message for the event stream and the metrics (issue 14: every
//! verdict is an event and a metric by result). Words only, from the verdict and the
//! decision, so the log line, the counters and the header can never disagree.

use crate::decision::Decision;
use crate::verdict::{DkimResult, Verdict};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// MAIL FROM (empty for the null sender).
    pub mail_from: String,
    /// The RFC5322.From domain DMARC evaluated (empty if none).
    pub from_domain: String,
    pub spf: &'static str,
    pub spf_helo: &'static str,
    /// pass if any signature passed, else the first other result, else none.
    pub dkim: &'static str,
    /// The d= of every signature that passed.
    pub dkim_domains: Vec<String>,
    pub dmarc: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dmarc_policy: Option<&'static str>,
    pub arc: &'static str,
    pub iprev: &'static str,
    /// accept, junk, reject, tempfail.
    pub decision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

impl Summary {
    pub fn new(verdict: &Verdict, decision: &Decision) -> Summary {
        Summary {
            mail_from: verdict.envelope.mail_from.clone(),
            from_domain: verdict.dmarc.from_domain.clone(),
            spf: verdict.spf_mail_from.result.as_str(),
            spf_helo: verdict.spf_helo.result.as_str(),
            dkim: verdict.dkim_summary().as_str(),
            dkim_domains: verdict
                .dkim
                .iter()
                .filter(|d| d.result == DkimResult::Pass)
                .map(|d| d.domain.clone())
                .collect(),
            dmarc: verdict.dmarc.result.as_str(),
            dmarc_policy: verdict.dmarc.policy.map(|p| p.as_str()),
            arc: verdict.arc.result.as_str(),
            iprev: verdict.iprev.result.as_str(),
            decision: decision.label(),
            reason: decision.reason().map(|r| r.as_str()),
        }
    }

    /// `(method, result)` pairs for a counter such as
    /// `portcullis_sender_auth_results_total{method, result}`: one increment each per message.
    pub fn metric_labels(&self) -> [(&'static str, &'static str); 6] {
        [
            ("spf", self.spf),
            ("spf_helo", self.spf_helo),
            ("dkim", self.dkim),
            ("dmarc", self.dmarc),
            ("arc", self.arc),
            ("iprev", self.iprev),
        ]
    }
}
