//! `[log]`: the event log's format (JSON lines or text) and where it goes (standard output,
//! or a file rotated by size).

use std::path::PathBuf;

use serde::Deserialize;

use crate::check::Check;
use crate::error::ConfigError;
use crate::units::Size;

const MAX_SIZE: u64 = 100 << 20;
const KEEP: u32 = 5;

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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLog {
    format: Option<String>,
    file: Option<String>,
    max_size: Option<Size>,
    keep: Option<u32>,
}

impl RawLog {
    pub(crate) fn validate(self, c: &Check<'_>) -> Result<Log, ConfigError> {
        let log = Log {
            format: match self.format.as_deref().unwrap_or("json") {
                "json" => LogFormat::Json,
                "text" => LogFormat::Text,
                other => return Err(c.invalid("log.format", format!("must be \"json\" or \"text\", not \"{other}\""))),
            },
            file: match self.file {
                Some(f) if f.trim().is_empty() => return Err(c.invalid("log.file", "must name a file")),
                Some(f) => Some(c.file(&f)),
                None => None,
            },
            max_size: c.size("log.max_size", self.max_size, MAX_SIZE)?,
            keep: self.keep.unwrap_or(KEEP),
        };
        if log.max_size < 1024 {
            return Err(c.invalid("log.max_size", "must be at least 1KiB"));
        }
        if log.keep > 1000 {
            return Err(c.invalid("log.keep", "must be between 0 and 1000"));
        }
        Ok(log)
    }
}
