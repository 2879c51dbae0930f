//! The log consumer: one line per event, JSON (for machines) or text (for terminals), written by
//! its own thread so that emitting never waits on a slow terminal or disk.

use crate::{Record, Sink};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::time::{Duration, UNIX_EPOCH};

/// Lines queued for the writer before new ones are dropped (and the drop is counted and logged).
const QUEUE: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

enum Msg {
    Line(String),
    /// Answered once every line queued before it is written.
    Flush(SyncSender<()>),
}

pub struct LogSink {
    format: LogFormat,
    tx: SyncSender<Msg>,
    dropped: AtomicU64,
}

impl LogSink {
    /// A sink writing to `out` (stdout in the server) on a background thread.
    pub fn spawn(format: LogFormat, mut out: Box<dyn Write + Send>) -> Self {
        let (tx, rx) = sync_channel::<Msg>(QUEUE);
        std::thread::Builder::new()
            .name("portcullis-log".into())
            .spawn(move || {
                for msg in rx {
                    match msg {
                        // A failing log target must not take the server down; there is
                        // nowhere better to report it.
                        Msg::Line(line) => {
                            let _ = out.write_all(line.as_bytes());
                            let _ = out.flush();
                        }
                        Msg::Flush(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            })
            .expect("spawning the log thread");
        LogSink { format, tx, dropped: AtomicU64::new(0) }
    }

    fn render(&self, record: &Record) -> String {
        let mut line = match self.format {
            LogFormat::Json => serde_json::to_string(record).unwrap_or_default(),
            LogFormat::Text => render_text(record),
        };
        line.push('\n');
        line
    }
}

impl Sink for LogSink {
    fn accept(&self, record: &Record) {
        if !record.event.is_logged() {
            return;
        }
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let note = match self.format {
                LogFormat::Json => {
                    format!("{{\"event\":\"log_dropped\",\"ts_ms\":{},\"count\":{dropped}}}\n", record.ts_ms)
                }
                LogFormat::Text => format!("log_dropped count={dropped}\n"),
            };
            let _ = self.tx.try_send(Msg::Line(note));
        }
        match self.tx.try_send(Msg::Line(self.render(record))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn flush(&self) {
        let (done, wait) = sync_channel(1);
        if self.tx.send(Msg::Flush(done)).is_ok() {
            let _ = wait.recv_timeout(std::time::Duration::from_secs(5));
        }
    }
}

/// `2026-11-28T00:47:55.123Z auth_failed conn=7 listener=submissions ...`
fn render_text(record: &Record) -> String {
    let when = UNIX_EPOCH + Duration::from_millis(record.ts_ms);
    let mut line = humantime::format_rfc3339_millis(when).to_string();
    if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(&record.event) {
        if let Some(serde_json::Value::String(name)) = fields.get("event") {
            line.push(' ');
            line.push_str(name);
        }
        for (key, value) in fields.iter().filter(|(k, _)| *k != "event") {
            line.push(' ');
            line.push_str(key);
            line.push('=');
            match value {
                serde_json::Value::String(s) if !s.contains(' ') && !s.is_empty() => line.push_str(s),
                other => line.push_str(&other.to_string()),
            }
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Event;

    #[test]
    fn text_lines_are_readable() {
        let record = Record {
            ts_ms: 0,
            event: Event::ConfigReloaded { what: "tls", ok: false, error: Some("no such file".into()) },
        };
        assert_eq!(
            render_text(&record),
            "1970-01-01T00:00:00.000Z config_reloaded what=tls ok=false error=\"no such file\""
        );
    }
}
