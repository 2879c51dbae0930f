//! The whole file: [`Config`], its raw form (the two top-level keys and one table per
//! section), and the composition that validates each section in turn. The sections' own keys,
//! defaults and checks live in their files; only the top-level keys are checked here.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::admin::{Admin, RawAdmin};
use crate::alerts::{Alerts, RawAlerts};
use crate::check::Check;
use crate::dane::{Dane, RawDane};
use crate::delivery::{Delivery, RawDelivery};
use crate::dns::{Dns, RawDns};
use crate::error::ConfigError;
use crate::firewall::{Firewall, RawFirewall};
use crate::guard::{Guard, RawGuard};
use crate::limits::{Limits, RawLimits};
use crate::listen::{Listen, RawListen};
use crate::log::{Log, RawLog};
use crate::mta_sts::{MtaSts, RawMtaSts};
use crate::names::is_hostname;
use crate::passwords::{Passwords, RawPasswords};
use crate::process::{Process, RawProcess};
use crate::proxy::{Proxy, RawProxy};
use crate::queue::{QueueRunner, RawQueue, RetrySchedule};
use crate::relay::{RawRelay, Relay};
use crate::sender_auth::{RawSenderAuth, SenderAuth};
use crate::smtp::{RawSmtp, Smtp};
use crate::store::{RawStore, Store};
use crate::tls::{RawTls, Tls};
use crate::tls_rpt::{RawTlsRpt, TlsRpt};

/// `data_dir` when the file does not set it (relative to the file).
const DATA_DIR: &str = "data";

#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was read from.
    pub path: PathBuf,
    pub hostname: String,
    pub data_dir: PathBuf,
    pub tls: Tls,
    pub listen: Listen,
    pub store: Store,
    pub limits: Limits,
    pub passwords: Passwords,
    pub process: Process,
    pub log: Log,
    pub firewall: Firewall,
    pub guard: Guard,
    pub alerts: Alerts,
    pub admin: Admin,
    /// The MX listener (`listen.smtp`): its connection and rate limits, its greeting delay.
    pub smtp: Smtp,
    pub dns: Dns,
    /// What the checks of mail from other servers lead to.
    pub sender_auth: SenderAuth,
    /// The outbound queue's retry schedule (`[queue]`).
    pub queue: RetrySchedule,
    /// How many deliveries the queue runner makes at once (`[queue]`).
    pub queue_runner: QueueRunner,
    /// How outbound connections are made (`[delivery]`).
    pub delivery: Delivery,
    /// The smart host all outbound mail goes through, if any (`[relay]`).
    pub relay: Option<Relay>,
    /// MTA-STS for outbound delivery (`[mta_sts]`).
    pub mta_sts: MtaSts,
    /// DANE for outbound delivery (`[dane]`).
    pub dane: Dane,
    /// TLS reports about outbound sessions (`[tls_rpt]`).
    pub tls_rpt: TlsRpt,
    /// Which listeners take a PROXY header, and from which balancers (`[proxy]`).
    pub proxy: Proxy,
}

/// The file as written: every key optional, unknown keys refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    hostname: Option<String>,
    data_dir: Option<String>,
    tls: Option<RawTls>,
    listen: Option<RawListen>,
    store: Option<RawStore>,
    limits: Option<RawLimits>,
    passwords: Option<RawPasswords>,
    process: Option<RawProcess>,
    log: Option<RawLog>,
    firewall: Option<RawFirewall>,
    guard: Option<RawGuard>,
    alerts: Option<RawAlerts>,
    admin: Option<RawAdmin>,
    smtp: Option<RawSmtp>,
    dns: Option<RawDns>,
    sender_auth: Option<RawSenderAuth>,
    queue: Option<RawQueue>,
    delivery: Option<RawDelivery>,
    relay: Option<RawRelay>,
    mta_sts: Option<RawMtaSts>,
    dane: Option<RawDane>,
    tls_rpt: Option<RawTlsRpt>,
    proxy: Option<RawProxy>,
}

impl Config {
    /// Reads and validates the config at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Config::parse(path, &text)
    }

    /// Validates `text` as if it had been read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: path.to_path_buf(), message: describe_toml_error(text, &e) })?;
        raw.validate(path)
    }
}

impl RawConfig {
    fn validate(self, path: &Path) -> Result<Config, ConfigError> {
        let c = Check::new(path);
        let hostname = self.hostname.ok_or_else(|| {
            c.invalid("hostname", "is required (the name clients connect to, e.g. \"mail.example.org\")")
        })?;
        if !is_hostname(&hostname) {
            return Err(c.invalid("hostname", format!("\"{hostname}\" is not a valid host name")));
        }
        let data_dir = c.file(self.data_dir.as_deref().unwrap_or(DATA_DIR));
        let tls = self.tls.unwrap_or_default().validate(&c)?;
        let listen = self.listen.unwrap_or_default().validate(&c)?;
        // The CA checks the names on the listener its challenge names: RFC 8737 on port 443,
        // RFC 8555 §8.3 on port 80.
        match tls.acme.as_ref().map(|a| a.challenge) {
            Some(crate::AcmeChallenge::TlsAlpn01) if !listen.is_on(crate::Listener::Https) => {
                return Err(c.invalid(
                    "tls.acme",
                    "needs the HTTPS listener, where the CA checks the names (TLS-ALPN-01): set listen.https = [\"0.0.0.0:443\"]",
                ))
            }
            Some(crate::AcmeChallenge::Http01) if !listen.is_on(crate::Listener::Http) => {
                return Err(c.invalid(
                    "tls.acme.challenge",
                    "\"http-01\" needs the port-80 listener, where the CA checks the names: set listen.http = [\"0.0.0.0:80\"]",
                ))
            }
            _ => {}
        }
        let store = self.store.unwrap_or_default().validate(&c, &data_dir)?;
        let limits = self.limits.unwrap_or_default().validate(&c)?;
        let passwords = self.passwords.unwrap_or_default().validate(&c)?;
        let process = self.process.unwrap_or_default().validate(&c)?;
        let log = self.log.unwrap_or_default().validate(&c)?;
        let firewall = self.firewall.unwrap_or_default().validate(&c)?;
        let guard = self.guard.unwrap_or_default().validate(&c)?;
        let alerts = self.alerts.unwrap_or_default().validate(&c)?;
        let admin = self.admin.unwrap_or_default().validate(&c, &data_dir, listen.admin())?;
        let smtp = self.smtp.unwrap_or_default().validate(&c, limits.max_connections)?;
        let dns = self.dns.unwrap_or_default().validate(&c)?;
        let sender_auth = self.sender_auth.unwrap_or_default().validate(&c)?;
        let raw_queue = self.queue.unwrap_or_default();
        let queue_runner = raw_queue.runner(&c)?;
        let queue = raw_queue.validate(&c)?;
        let delivery = self.delivery.unwrap_or_default().validate(&c)?;
        let relay = self.relay.map(|r| r.validate(&c)).transpose()?;
        let mta_sts = self.mta_sts.unwrap_or_default().validate(&c)?;
        let dane = self.dane.unwrap_or_default().validate(&c)?;
        let tls_rpt = self.tls_rpt.unwrap_or_default().validate(&c)?;
        let proxy = self.proxy.unwrap_or_default().validate(&c)?;
        Ok(Config {
            path: path.to_path_buf(),
            hostname: hostname.to_ascii_lowercase(),
            data_dir,
            tls,
            listen,
            store,
            limits,
            passwords,
            process,
            log,
            firewall,
            guard,
            alerts,
            admin,
            smtp,
            dns,
            sender_auth,
            queue,
            queue_runner,
            delivery,
            relay,
            mta_sts,
            dane,
            tls_rpt,
            proxy,
        })
    }
}

/// toml's own message, plus the line it points at, on one or two readable lines.
fn describe_toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim_end_matches('.').to_string();
    match error.span() {
        Some(span) => {
            let line_no = text[..span.start.min(text.len())].matches('\n').count() + 1;
            let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
            format!("line {line_no}: {message} (in `{line}`)")
        }
        None => message,
    }
}
