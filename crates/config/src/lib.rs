//! `portcullis.toml` (reference: docs/configuration.md): one file, unknown keys and bad values are errors that name the
//! key, relative paths are relative to the file. Every default here is the safe one for a server
//! on the open internet.
//!
//! One file per section (`tls.rs`, `limits.rs`, ...), each holding the section as written (every
//! key optional, unknown keys refused), its typed form, its defaults and its validation;
//! `root.rs` composes them into [`Config`]; `check.rs`, `units.rs` and `names.rs` are leaves the
//! sections share. docs/configuration.md is the reference, and a test keeps it and the code in
//! step (`docs_reference.rs`).
#![forbid(unsafe_code)]

mod admin;
mod alerts;
mod check;
mod dane;
mod delivery;
mod dns;
mod error;
mod firewall;
mod guard;
mod limits;
mod listen;
mod log;
mod mta_sts;
mod names;
mod passwords;
mod process;
mod proxy;
mod queue;
mod relay;
mod root;
mod sender_auth;
mod smtp;
mod store;
mod tls;
mod tls_rpt;
mod units;

pub use admin::{Admin, AdminToken, DEFAULT_TOKEN_FILE, MIN_TOKEN_LENGTH};
pub use alerts::{Alerts, NotifySeverity};
pub use dane::Dane;
pub use delivery::{Delivery, IpPreference};
pub use dns::{Dns, DnsServers};
pub use error::ConfigError;
pub use firewall::{parse_network, Firewall, NetRules};
pub use guard::Guard;
pub use ipnet::IpNet;
pub use limits::Limits;
pub use listen::Listen;
pub use log::{Log, LogFormat};
pub use mta_sts::MtaSts;
pub use names::{is_hostname, normalize_address, normalize_domain, MAX_LOGIN_NAME};
pub use passwords::Passwords;
pub use portcullis_listeners::Listener;
pub use process::Process;
pub use proxy::Proxy;
pub use queue::{QueueRunner, RetrySchedule};
pub use relay::{Relay, RelayLogin, RelayTls};
pub use root::Config;
pub use sender_auth::{AuthAction, SenderAuth, TempErrorAction};
pub use smtp::Smtp;
pub use store::{Backend, Postgres, Store};
pub use tls::{Acme, AcmeChallenge, Tls, TlsVersion};
pub use tls_rpt::TlsRpt;
pub use units::{format_size, parse_duration, parse_size};

/// The environment variable that names the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "PORTCULLIS_CONFIG";
/// The config file used when neither `--config` nor `$PORTCULLIS_CONFIG` is given.
pub const DEFAULT_CONFIG: &str = "portcullis.toml";

#[cfg(test)]
mod accepted_keys;
#[cfg(test)]
mod docs_reference;
#[cfg(test)]
mod tests;
