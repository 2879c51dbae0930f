//! `[process]`: the user `serve` runs as once its ports are bound, and how long SIGTERM waits
//! for sessions to finish.

use std::time::Duration;

use serde::Deserialize;

use crate::check::Check;
use crate::error::ConfigError;

const SHUTDOWN_GRACE: &str = "30s";

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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProcess {
    user: Option<String>,
    group: Option<String>,
    allow_root: Option<bool>,
    shutdown_grace: Option<String>,
}

impl RawProcess {
    pub(crate) fn validate(self, c: &Check<'_>) -> Result<Process, ConfigError> {
        let process = Process {
            user: self.user.filter(|u| !u.is_empty()),
            group: self.group.filter(|g| !g.is_empty()),
            allow_root: self.allow_root.unwrap_or(false),
            shutdown_grace: c.duration("process.shutdown_grace", self.shutdown_grace, SHUTDOWN_GRACE)?,
        };
        if process.user.as_deref() == Some("root") {
            return Err(c.invalid(
                "process.user",
                "must not be root; set process.allow_root = true to keep root (not recommended)",
            ));
        }
        Ok(process)
    }
}
