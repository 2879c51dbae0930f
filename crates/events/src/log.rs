//! The log consumer: one line per event, JSON (for machines) or text (for terminals), written by
//! its own thread so that emitting never waits on a slow terminal or disk.
//!
//! Events carry text from clients (user names, what a client sent): in both formats it is
//! escaped ([`crate::escape`]), so that a line break in a user name cannot forge a log line and
//! an escape sequence cannot reach the operator's terminal.

use crate::escape::{is_unsafe, to_strict_json};
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
            LogFormat::Json => to_strict_json(record),
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

/// `2026-11-28T00:47:55.123Z auth_failed conn=7 listener=submissions ...`: a value is written
/// as it is when it is a plain word, and as a JSON string (quoted, escaped) otherwise.
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
                serde_json::Value::String(s) if is_word(s) => line.push_str(s),
                other => line.push_str(&to_strict_json(other)),
            }
        }
    }
    line
}

/// A value that can stand unquoted: not empty, and nothing that would end it (white space),
/// open a quoted value, or need escaping.
fn is_word(value: &str) -> bool {
    !value.is_empty() && !value.chars().any(|c| c.is_whitespace() || c == '"' || c == '\\' || is_unsafe(c))
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

    fn failed_login(username: &str) -> Record {
        Record {
            ts_ms: 0,
            event: Event::AuthFailed {
                conn: 1,
                listener: crate::Listener::Submissions,
                peer: "192.0.2.1:4000".parse().unwrap(),
                username: username.into(),
                mechanism: "PLAIN",
                reason: "unknown_account",
                app_password: None,
            },
        }
    }

    #[test]
    fn a_user_name_stays_inside_its_line_in_both_formats() {
        // No plain space, so that it would once have been written unquoted.
        let forged =
            "x\n1970-01-01T00:00:00.000Z\u{a0}auth_succeeded\u{a0}account=root\r\u{1b}[2K\u{85}\u{2028}\u{202e}";
        for format in [LogFormat::Json, LogFormat::Text] {
            let sink = LogSink::spawn(format, Box::new(std::io::sink()));
            let line = sink.render(&failed_login(forged));
            assert_eq!(line.matches('\n').count(), 1, "{format:?}: {line:?}");
            assert!(line.ends_with('\n'));
            assert!(!line.trim_end().chars().any(is_unsafe), "{format:?}: {line:?}");
        }
        let text = render_text(&failed_login(forged));
        assert!(text.contains("username=\"x\\n1970-01-01T00:00:00.000Z\u{a0}auth_succeeded"), "{text}");
        // Quoted values are JSON strings: they read back to exactly what the client sent.
        let quoted = text.split("username=").nth(1).unwrap().split(" mechanism=").next().unwrap();
        assert_eq!(serde_json::from_str::<String>(quoted).unwrap(), forged);
        let json: serde_json::Value = serde_json::from_str(&to_strict_json(&failed_login(forged))).unwrap();
        assert_eq!(json["username"], forged);
    }

    #[test]
    fn words_stay_unquoted_and_the_rest_is_quoted() {
        assert_eq!(
            render_text(&failed_login("müller@example.org")),
            "1970-01-01T00:00:00.000Z auth_failed conn=1 listener=submissions peer=192.0.2.1:4000 username=müller@example.org mechanism=PLAIN reason=unknown_account"
        );
        for (name, shown) in [("", "\"\""), ("a\"b", "\"a\\\"b\""), ("a\\b", "\"a\\\\b\""), ("a\tb", "\"a\\tb\"")] {
            assert!(render_text(&failed_login(name)).contains(&format!("username={shown} ")), "{name:?}");
        }
    }
}
