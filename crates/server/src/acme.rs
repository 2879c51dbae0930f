//! `[tls] acme` at work: the certificate manager of crates/acme run inside the server. It
//! certifies the host name and the `autoconfig.`, `autodiscover.` and `mta-sts.` names of each
//! local domain, answers TLS-ALPN-01 on the HTTPS listener or HTTP-01 on the port-80 listener
//! (through the [`Challenges`] given to `https::start` and `https::start_http`), and hands every certificate to the listeners' SNI choice under the
//! label "acme": new handshakes get it at once, established sessions keep theirs.
//!
//! What the manager reports becomes the server's events (`acme_certificate`, `acme_failed`),
//! and each failure an alert (`certificate_renewal`) of the manager's urgency, so that the
//! log, the metrics, the dashboard and `portcullis status` all see the same thing.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use portcullis_acme::{AcmeEvent, AcmeSettings, CertStore, ChallengeKind, Challenges, Hooks, Manager, Urgency};
use portcullis_config::AcmeChallenge;
use portcullis_events::{AlertKind, Event, Events, Severity};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::state::Shared;

/// The label of the ACME certificate among the listeners' certificates.
const SNI_LABEL: &str = "acme";

/// The host prefixes of each domain's documents, which the certificate must cover.
const DOMAIN_PREFIXES: [&str; 3] = ["autoconfig.", "autodiscover.", "mta-sts."];

/// Starts the manager when `tls.acme` is set; it runs until the server stops accepting.
pub async fn start(shared: &Arc<Shared>, challenges: Arc<Challenges>) -> Result<(), String> {
    let Some(acme) = &shared.config.tls.acme else { return Ok(()) };
    let domains = shared.store.domains().await.map_err(|e| format!("tls.acme: cannot read the local domains: {e}"))?;
    let mut settings =
        AcmeSettings::new(&acme.directory, vec![acme.contact.clone()], names(&shared.config.hostname, &domains));
    settings.challenge = match acme.challenge {
        AcmeChallenge::TlsAlpn01 => ChallengeKind::TlsAlpn01,
        AcmeChallenge::Http01 => ChallengeKind::Http01,
    };
    if let Some(file) = &acme.directory_ca {
        settings.extra_roots = CertificateDer::pem_file_iter(file)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("tls.acme.directory_ca: cannot read {}: {e}", file.display()))?;
    }
    let store = CertStore::open(shared.config.data_dir.join("acme")).map_err(|e| format!("tls.acme: {e}"))?;
    let sni = shared.tls.sni().clone();
    let events = shared.events.clone();
    let hooks = Hooks {
        on_event: Box::new(move |event| report(&events, event)),
        on_certificate: Box::new(move |key| sni.set(SNI_LABEL, key)),
    };
    let manager = Manager::new(settings, store, challenges, hooks);
    let stop = shared.stop_accepting.clone();
    tokio::spawn(async move { manager.run(stop.cancelled_owned()).await });
    Ok(())
}

/// The names to certify: the host name first, then each domain's document hosts.
fn names(hostname: &str, domains: &[String]) -> Vec<String> {
    let mut names = vec![hostname.to_string()];
    for domain in domains {
        for prefix in DOMAIN_PREFIXES {
            let name = format!("{prefix}{domain}");
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The manager's report as the server's events.
fn report(events: &Events, event: AcmeEvent) {
    match event {
        AcmeEvent::Loaded { names, not_after, renewal_due } => events.emit(Event::AcmeCertificate {
            names,
            not_after: unix_seconds(not_after),
            renewal_due: unix_seconds(renewal_due),
            new: false,
        }),
        AcmeEvent::Issued { names, not_after, renewal_due } => events.emit(Event::AcmeCertificate {
            names,
            not_after: unix_seconds(not_after),
            renewal_due: unix_seconds(renewal_due),
            new: true,
        }),
        AcmeEvent::Failed { error, failures, retry_in, expires_in, urgency } => {
            let severity = match urgency {
                Urgency::Warning => Severity::Warning,
                Urgency::Critical => Severity::Critical,
            };
            let left = match expires_in {
                Some(left) => {
                    format!("the certificate in service expires in {}", humantime::format_duration(round(left)))
                }
                None => "there is no certificate from the CA yet".to_string(),
            };
            let message = format!(
                "the ACME CA did not issue a certificate (attempt {failures}): {error}; {left}; next try in {}",
                humantime::format_duration(round(retry_in))
            );
            events.emit(Event::AcmeFailed {
                error,
                failures,
                retry_in_s: retry_in.as_secs(),
                expires_in_s: expires_in.map(|d| d.as_secs()),
                severity,
            });
            events.emit(Event::AlertRaised {
                kind: AlertKind::CertificateRenewal,
                severity,
                listener: None,
                account: None,
                peer: None,
                observed: f64::from(failures),
                baseline: None,
                threshold: None,
                message,
            });
        }
    }
}

/// Whole seconds, for messages.
fn round(d: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_secs(d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_name_comes_first_then_each_domains_document_hosts() {
        let domains = vec!["example.org".to_string(), "example.net".to_string()];
        assert_eq!(
            names("mail.example.org", &domains),
            [
                "mail.example.org",
                "autoconfig.example.org",
                "autodiscover.example.org",
                "mta-sts.example.org",
                "autoconfig.example.net",
                "autodiscover.example.net",
                "mta-sts.example.net",
            ]
        );
        assert_eq!(names("mail.example.org", &[]), ["mail.example.org"]);
    }
}
