//! The file as written (every key optional, unknown keys refused), and its validation into
//! [`Config`] with defaults filled in. Each check names the dotted key it is about.

use crate::units::{parse_duration, parse_size};
use crate::*;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Root {
    hostname: Option<String>,
    data_dir: Option<String>,
    tls: Option<RawTls>,
    listen: Option<RawListen>,
    store: Option<RawStore>,
    limits: Option<RawLimits>,
    passwords: Option<RawPasswords>,
    process: Option<RawProcess>,
    log: Option<RawLog>,
    firewall: Option<crate::guard::RawFirewall>,
    guard: Option<crate::guard::RawGuard>,
    alerts: Option<crate::guard::RawAlerts>,
    admin: Option<crate::admin::RawAdmin>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Option<String>,
    key: Option<String>,
    min_version: Option<String>,
    handshake_timeout: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawListen {
    submissions: Option<Vec<String>>,
    submission: Option<Vec<String>>,
    imaps: Option<Vec<String>>,
    pop3s: Option<Vec<String>>,
    admin: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStore {
    url: Option<String>,
    default_quota: Option<Size>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    max_message_size: Option<Size>,
    max_recipients: Option<usize>,
    max_line_length: Option<usize>,
    max_commands: Option<u64>,
    max_auth_failures: Option<u32>,
    smtp_idle_timeout: Option<String>,
    pop3_idle_timeout: Option<String>,
    imap_idle_timeout: Option<String>,
    max_imap_sessions_per_account: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPasswords {
    scram_iterations: Option<u32>,
    min_length: Option<usize>,
    min_strength: Option<u8>,
    argon2_memory_kib: Option<u32>,
    argon2_iterations: Option<u32>,
    argon2_parallelism: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawProcess {
    user: Option<String>,
    group: Option<String>,
    allow_root: Option<bool>,
    shutdown_grace: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<String>,
    file: Option<String>,
    max_size: Option<Size>,
    keep: Option<u32>,
}

/// A size written as a number of bytes or as text with a unit.
#[derive(Deserialize)]
#[serde(untagged)]
enum Size {
    Bytes(u64),
    Text(String),
}

/// Defaults, in one place so that the README's config reference can be checked against them.
pub mod defaults {
    pub const MIN_VERSION: &str = "1.2";
    pub const HANDSHAKE_TIMEOUT: &str = "10s";
    pub const DEFAULT_QUOTA: &str = "2GiB";
    pub const MAX_CONNECTIONS: usize = 2000;
    pub const MAX_CONNECTIONS_PER_IP: usize = 20;
    pub const MAX_MESSAGE_SIZE: u64 = 50 << 20;
    pub const MAX_RECIPIENTS: usize = 100;
    /// RFC 4954 §4 lets an AUTH line carry 12288 octets of SASL; 4 KiB is ample for PLAIN.
    pub const MAX_LINE_LENGTH: usize = 4096;
    pub const MAX_COMMANDS: u64 = 10_000;
    pub const MAX_AUTH_FAILURES: u32 = 3;
    /// RFC 5321 §4.5.3.2.7: a server should wait at least 5 minutes for the next command.
    pub const SMTP_IDLE_TIMEOUT: &str = "5m";
    /// RFC 1939 §3: an autologout timer of at least 10 minutes.
    pub const POP3_IDLE_TIMEOUT: &str = "10m";
    /// RFC 9051 §5.4: an autologout timer of at least 30 minutes.
    pub const IMAP_IDLE_TIMEOUT: &str = "30m";
    pub const MAX_IMAP_SESSIONS_PER_ACCOUNT: usize = 20;
    pub const MIN_PASSWORD_LENGTH: usize = 12;
    pub const MIN_PASSWORD_STRENGTH: u8 = 3;
    /// OWASP's argon2id recommendation (19 MiB, 2 passes, 1 lane).
    pub const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
    pub const ARGON2_ITERATIONS: u32 = 2;
    pub const ARGON2_PARALLELISM: u32 = 1;
    pub const SHUTDOWN_GRACE: &str = "30s";
    pub const LOG_MAX_SIZE: u64 = 100 << 20;
    pub const LOG_KEEP: u32 = 5;
}

pub(crate) struct Check<'a> {
    path: &'a Path,
    base: PathBuf,
}

impl Check<'_> {
    pub(crate) fn invalid(&self, key: &'static str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid { path: self.path.to_path_buf(), key, message: message.into() }
    }

    pub(crate) fn file(&self, text: &str) -> PathBuf {
        self.base.join(text)
    }

    pub(crate) fn duration(
        &self,
        key: &'static str,
        value: Option<String>,
        default: &str,
    ) -> Result<Duration, ConfigError> {
        let text = value.unwrap_or_else(|| default.to_string());
        let d = parse_duration(&text).map_err(|m| self.invalid(key, m))?;
        if d.is_zero() {
            return Err(self.invalid(key, "must be longer than zero"));
        }
        Ok(d)
    }

    fn size(&self, key: &'static str, value: Option<Size>, default: u64) -> Result<u64, ConfigError> {
        match value {
            None => Ok(default),
            Some(Size::Bytes(n)) => Ok(n),
            Some(Size::Text(t)) => parse_size(&t).map_err(|m| self.invalid(key, m)),
        }
    }

    pub(crate) fn positive<T: PartialOrd + Default + Copy>(
        &self,
        key: &'static str,
        value: Option<T>,
        default: T,
    ) -> Result<T, ConfigError> {
        let v = value.unwrap_or(default);
        if v <= T::default() {
            return Err(self.invalid(key, "must be at least 1"));
        }
        Ok(v)
    }

    fn addresses(&self, key: &'static str, value: Option<Vec<String>>) -> Result<Vec<SocketAddr>, ConfigError> {
        value
            .unwrap_or_default()
            .iter()
            .map(|a| {
                a.parse::<SocketAddr>().map_err(|_| {
                    self.invalid(key, format!("\"{a}\" is not an address:port (try \"0.0.0.0:465\" or \"[::]:465\")"))
                })
            })
            .collect()
    }
}

impl Root {
    pub(crate) fn validate(self, path: &Path) -> Result<Config, ConfigError> {
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base = if base.as_os_str().is_empty() { PathBuf::from(".") } else { base };
        let c = Check { path, base };

        let hostname = self.hostname.ok_or_else(|| {
            c.invalid("hostname", "is required (the name clients connect to, e.g. \"mail.example.org\")")
        })?;
        if !is_hostname(&hostname) {
            return Err(c.invalid("hostname", format!("\"{hostname}\" is not a valid host name")));
        }
        let data_dir = c.file(self.data_dir.as_deref().unwrap_or("data"));

        let tls = self.tls.unwrap_or_default();
        let min_version = match tls.min_version.as_deref().unwrap_or(defaults::MIN_VERSION) {
            "1.2" => TlsVersion::V1_2,
            "1.3" => TlsVersion::V1_3,
            other => {
                return Err(c.invalid(
                    "tls.min_version",
                    format!("must be \"1.2\" or \"1.3\", not \"{other}\" (older versions are never offered)"),
                ))
            }
        };
        let tls = Tls {
            cert: c.file(&tls.cert.ok_or_else(|| c.invalid("tls.cert", "is required (a PEM certificate chain)"))?),
            key: c.file(&tls.key.ok_or_else(|| c.invalid("tls.key", "is required (a PEM private key)"))?),
            min_version,
            handshake_timeout: c.duration(
                "tls.handshake_timeout",
                tls.handshake_timeout,
                defaults::HANDSHAKE_TIMEOUT,
            )?,
        };

        let listen = self.listen.unwrap_or_default();
        let listen = Listen {
            submissions: c.addresses("listen.submissions", listen.submissions)?,
            submission: c.addresses("listen.submission", listen.submission)?,
            imaps: c.addresses("listen.imaps", listen.imaps)?,
            pop3s: c.addresses("listen.pop3s", listen.pop3s)?,
            admin: c.addresses("listen.admin", listen.admin)?,
        };

        let store = self.store.unwrap_or_default();
        let sqlite_path = match store.url {
            None => data_dir.join("mail.db"),
            Some(url) => match url.strip_prefix("sqlite:") {
                Some(file) if !file.is_empty() => c.file(file.trim_start_matches("//")),
                _ => {
                    return Err(c.invalid(
                        "store.url",
                        format!("\"{url}\" is not supported; use \"sqlite:PATH\" (PostgreSQL comes later)"),
                    ))
                }
            },
        };
        let default_quota = match store.default_quota {
            Some(Size::Text(t)) if t.eq_ignore_ascii_case("unlimited") => None,
            other => Some(c.size("store.default_quota", other, parse_size(defaults::DEFAULT_QUOTA).unwrap_or(0))?),
        };
        let store = Store { sqlite_path, default_quota };

        let l = self.limits.unwrap_or_default();
        let limits = Limits {
            max_connections: c.positive("limits.max_connections", l.max_connections, defaults::MAX_CONNECTIONS)?,
            max_connections_per_ip: c.positive(
                "limits.max_connections_per_ip",
                l.max_connections_per_ip,
                defaults::MAX_CONNECTIONS_PER_IP,
            )?,
            max_message_size: c.size("limits.max_message_size", l.max_message_size, defaults::MAX_MESSAGE_SIZE)?,
            max_recipients: c.positive("limits.max_recipients", l.max_recipients, defaults::MAX_RECIPIENTS)?,
            max_line_length: l.max_line_length.unwrap_or(defaults::MAX_LINE_LENGTH),
            max_commands: c.positive("limits.max_commands", l.max_commands, defaults::MAX_COMMANDS)?,
            max_auth_failures: c.positive(
                "limits.max_auth_failures",
                l.max_auth_failures,
                defaults::MAX_AUTH_FAILURES,
            )?,
            smtp_idle_timeout: c.duration(
                "limits.smtp_idle_timeout",
                l.smtp_idle_timeout,
                defaults::SMTP_IDLE_TIMEOUT,
            )?,
            pop3_idle_timeout: c.duration(
                "limits.pop3_idle_timeout",
                l.pop3_idle_timeout,
                defaults::POP3_IDLE_TIMEOUT,
            )?,
            imap_idle_timeout: c.duration(
                "limits.imap_idle_timeout",
                l.imap_idle_timeout,
                defaults::IMAP_IDLE_TIMEOUT,
            )?,
            max_imap_sessions_per_account: c.positive(
                "limits.max_imap_sessions_per_account",
                l.max_imap_sessions_per_account,
                defaults::MAX_IMAP_SESSIONS_PER_ACCOUNT,
            )?,
        };
        if limits.max_line_length < 512 {
            return Err(c.invalid("limits.max_line_length", "must be at least 512 (RFC 5321 §4.5.3.1.4)"));
        }
        if limits.max_message_size < 1024 {
            return Err(c.invalid("limits.max_message_size", "must be at least 1KiB"));
        }
        if limits.max_connections_per_ip > limits.max_connections {
            return Err(c.invalid("limits.max_connections_per_ip", "cannot be larger than limits.max_connections"));
        }

        let p = self.passwords.unwrap_or_default();
        let passwords = Passwords {
            scram_iterations: p.scram_iterations.unwrap_or(10_000),
            min_length: p.min_length.unwrap_or(defaults::MIN_PASSWORD_LENGTH),
            min_strength: p.min_strength.unwrap_or(defaults::MIN_PASSWORD_STRENGTH),
            argon2_memory_kib: p.argon2_memory_kib.unwrap_or(defaults::ARGON2_MEMORY_KIB),
            argon2_iterations: p.argon2_iterations.unwrap_or(defaults::ARGON2_ITERATIONS),
            argon2_parallelism: p.argon2_parallelism.unwrap_or(defaults::ARGON2_PARALLELISM),
        };
        if passwords.min_length < 8 {
            return Err(c.invalid("passwords.min_length", "must be at least 8"));
        }
        if passwords.argon2_memory_kib < 8 * passwords.argon2_parallelism.max(1)
            || passwords.argon2_memory_kib > 4 * 1024 * 1024
        {
            return Err(
                c.invalid("passwords.argon2_memory_kib", "must be between 8 x argon2_parallelism and 4194304 (4 GiB)")
            );
        }
        if passwords.scram_iterations < 4096 {
            return Err(c.invalid("passwords.scram_iterations", "must be at least 4096 (RFC 7677)"));
        }
        if passwords.min_strength > 4 {
            return Err(c.invalid("passwords.min_strength", "must be between 0 and 4 (zxcvbn scores)"));
        }
        if !(1..=64).contains(&passwords.argon2_iterations) {
            return Err(c.invalid("passwords.argon2_iterations", "must be between 1 and 64"));
        }
        if !(1..=16).contains(&passwords.argon2_parallelism) {
            return Err(c.invalid("passwords.argon2_parallelism", "must be between 1 and 16"));
        }

        let pr = self.process.unwrap_or_default();
        let process = Process {
            user: pr.user.filter(|u| !u.is_empty()),
            group: pr.group.filter(|g| !g.is_empty()),
            allow_root: pr.allow_root.unwrap_or(false),
            shutdown_grace: c.duration("process.shutdown_grace", pr.shutdown_grace, defaults::SHUTDOWN_GRACE)?,
        };
        if process.user.as_deref() == Some("root") {
            return Err(c.invalid(
                "process.user",
                "must not be root; set process.allow_root = true to keep root (not recommended)",
            ));
        }

        let raw_log = self.log.unwrap_or_default();
        let log = Log {
            format: match raw_log.format.as_deref().unwrap_or("json") {
                "json" => LogFormat::Json,
                "text" => LogFormat::Text,
                other => return Err(c.invalid("log.format", format!("must be \"json\" or \"text\", not \"{other}\""))),
            },
            file: match raw_log.file {
                Some(f) if f.trim().is_empty() => return Err(c.invalid("log.file", "must name a file")),
                Some(f) => Some(c.file(&f)),
                None => None,
            },
            max_size: c.size("log.max_size", raw_log.max_size, defaults::LOG_MAX_SIZE)?,
            keep: raw_log.keep.unwrap_or(defaults::LOG_KEEP),
        };
        if log.max_size < 1024 {
            return Err(c.invalid("log.max_size", "must be at least 1KiB"));
        }
        if log.keep > 1000 {
            return Err(c.invalid("log.keep", "must be between 0 and 1000"));
        }

        let firewall = self.firewall.unwrap_or_default().validate(&c)?;
        let guard = self.guard.unwrap_or_default().validate(&c)?;
        let alerts = self.alerts.unwrap_or_default().validate(&c)?;
        let admin = self.admin.unwrap_or_default().validate(&c, &data_dir, &listen.admin)?;
        if alerts.mail_to.as_deref().is_some_and(|a| !a.contains('@')) {
            return Err(c.invalid("alerts.mail_to", "must be a local address such as \"postmaster@example.org\""));
        }

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
        })
    }
}

/// RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens.
pub fn is_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}
