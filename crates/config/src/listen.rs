//! `[listen]`: the addresses each listener binds. A missing key means that listener is off.

use std::net::SocketAddr;

use serde::Deserialize;

use crate::check::Check;
use crate::error::ConfigError;

#[derive(Debug, Clone, Default)]
pub struct Listen {
    pub submissions: Vec<SocketAddr>,
    pub submission: Vec<SocketAddr>,
    pub imaps: Vec<SocketAddr>,
    pub pop3s: Vec<SocketAddr>,
    pub admin: Vec<SocketAddr>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListen {
    submissions: Option<Vec<String>>,
    submission: Option<Vec<String>>,
    imaps: Option<Vec<String>>,
    pop3s: Option<Vec<String>>,
    admin: Option<Vec<String>>,
}

impl RawListen {
    pub(crate) fn validate(self, c: &Check<'_>) -> Result<Listen, ConfigError> {
        Ok(Listen {
            submissions: c.addresses("listen.submissions", self.submissions)?,
            submission: c.addresses("listen.submission", self.submission)?,
            imaps: c.addresses("listen.imaps", self.imaps)?,
            pop3s: c.addresses("listen.pop3s", self.pop3s)?,
            admin: c.addresses("listen.admin", self.admin)?,
        })
    }
}
