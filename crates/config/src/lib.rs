//! `portcullis.toml` (DESIGN §3): one file, unknown keys and bad values are errors that name the
//! key, relative paths are relative to the file. Every default here is the safe one for a server
//! on the open internet.
#![forbid(unsafe_code)]

mod admin;
mod guard;
mod raw;
mod units;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use admin::{Admin, AdminToken, DEFAULT_TOKEN_FILE, MIN_TOKEN_LENGTH};
pub use guard::{parse_network, Alerts, Firewall, Guard, NetRules, NotifySeverity};
pub use ipnet::IpNet;
pub use raw::{defaults, is_hostname};
pub use units::{format_size, parse_duration, parse_size};

/// The environment variable that names the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "PORTCULLIS_CONFIG";
/// The config file used when neither `--config` nor `$PORTCULLIS_CONFIG` is given.
pub const DEFAULT_CONFIG: &str = "portcullis.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// A syntax error, an unknown key or a value of the wrong type.
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// A value that parsed but is not acceptable; `key` is its dotted path.
    #[error("{path}: {key}: {message}")]
    Invalid { path: PathBuf, key: &'static str, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    V1_2,
    V1_3,
}

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
}

#[derive(Debug, Clone)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub min_version: TlsVersion,
    pub handshake_timeout: Duration,
}

#[derive(Debug, Clone, Default)]
pub struct Listen {
    pub submissions: Vec<SocketAddr>,
    pub submission: Vec<SocketAddr>,
    pub imaps: Vec<SocketAddr>,
    pub pop3s: Vec<SocketAddr>,
    pub admin: Vec<SocketAddr>,
}

#[derive(Debug, Clone)]
pub struct Store {
    /// The SQLite database file (from `url = "sqlite:PATH"`).
    pub sqlite_path: PathBuf,
    /// Storage per account unless the account has its own; `None` is unlimited.
    pub default_quota: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub max_message_size: u64,
    pub max_recipients: usize,
    /// Longest command line, CRLF included (SASL responses ride on command lines).
    pub max_line_length: usize,
    /// Commands one connection may send before it is closed.
    pub max_commands: u64,
    /// Failed authentications one connection may make before it is closed.
    pub max_auth_failures: u32,
    pub smtp_idle_timeout: Duration,
    pub pop3_idle_timeout: Duration,
    /// IMAP autologout, IDLE included (RFC 9051 §5.4: at least 30 minutes).
    pub imap_idle_timeout: Duration,
    /// Concurrent IMAP sessions one account may have.
    pub max_imap_sessions_per_account: usize,
}

#[derive(Debug, Clone)]
pub struct Passwords {
    /// PBKDF2 rounds for SCRAM-SHA-256 keys (RFC 7677 asks for at least 4096).
    pub scram_iterations: u32,
    pub min_length: usize,
    /// Least zxcvbn score (0-4) a new password must reach; 3 refuses common and guessable ones.
    pub min_strength: u8,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
}

#[derive(Debug, Clone)]
pub struct Process {
    /// Started as root, `serve` drops to this user after binding its listeners.
    pub user: Option<String>,
    pub group: Option<String>,
    /// Keep running as root when started as root (not recommended; must be asked for).
    pub allow_root: bool,
    /// On SIGTERM, how long sessions may take to finish before they are closed.
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Clone)]
pub struct Log {
    pub format: LogFormat,
    /// Write the log to this file (rotated by size) instead of standard output.
    pub file: Option<PathBuf>,
    /// Rotate the file when it would grow past this many bytes.
    pub max_size: u64,
    /// Rotated files kept (`portcullis.log.1` ... `.keep`).
    pub keep: u32,
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
        let raw: raw::Root = toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: path.to_path_buf(), message: describe_toml_error(text, &e) })?;
        raw.validate(path)
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

#[cfg(test)]
mod tests;
