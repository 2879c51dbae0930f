//! [`Check`]: the context every section validates in. It knows the file (for error messages
//! and for resolving relative paths) and turns raw values into typed ones, each failure naming
//! the dotted key it is about. A leaf: sections use it, it uses no section.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::ConfigError;
use crate::units::{parse_duration, parse_size, Size};

pub(crate) struct Check<'a> {
    path: &'a Path,
    /// The directory relative paths are resolved against: the config file's.
    base: PathBuf,
}

impl<'a> Check<'a> {
    pub(crate) fn new(path: &'a Path) -> Check<'a> {
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base = if base.as_os_str().is_empty() { PathBuf::from(".") } else { base };
        Check { path, base }
    }

    pub(crate) fn invalid(&self, key: &'static str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid { path: self.path.to_path_buf(), key, message: message.into() }
    }

    /// A path as written in the file: relative paths are relative to the file.
    pub(crate) fn file(&self, text: &str) -> PathBuf {
        self.base.join(text)
    }

    /// A duration ("10s", "5m"), longer than zero.
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

    /// A duration that may be zero ("0s": the thing it delays is not delayed).
    pub(crate) fn duration_or_zero(
        &self,
        key: &'static str,
        value: Option<String>,
        default: &str,
    ) -> Result<Duration, ConfigError> {
        let text = value.unwrap_or_else(|| default.to_string());
        if text.trim() == "0" {
            return Ok(Duration::ZERO);
        }
        parse_duration(&text).map_err(|m| self.invalid(key, m))
    }

    /// A size in bytes, written as a number or as text with a unit.
    pub(crate) fn size(&self, key: &'static str, value: Option<Size>, default: u64) -> Result<u64, ConfigError> {
        match value {
            None => Ok(default),
            Some(Size::Bytes(n)) => Ok(n),
            Some(Size::Text(t)) => parse_size(&t).map_err(|m| self.invalid(key, m)),
        }
    }

    /// A count that must be at least 1.
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

    /// A count that is 0 (the thing it counts towards never happens) or at least `min`.
    pub(crate) fn never_or_at_least(
        &self,
        min: u32,
        key: &'static str,
        value: Option<u32>,
        default: u32,
    ) -> Result<u32, ConfigError> {
        let v = value.unwrap_or(default);
        if v != 0 && v < min {
            return Err(self.invalid(key, format!("must be 0 (never) or at least {min}")));
        }
        Ok(v)
    }

    /// A list of "address:port"; absent is empty.
    pub(crate) fn addresses(
        &self,
        key: &'static str,
        value: Option<Vec<String>>,
    ) -> Result<Vec<SocketAddr>, ConfigError> {
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
