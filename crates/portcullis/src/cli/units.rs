//! Times and sizes as the CLI reads and prints them: the wall clock in unix seconds (as the
//! store keeps it), dates in RFC 3339, and sizes an operator reads at a glance.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now, in unix seconds.
pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Unix seconds -> "2026-12-07T10:42:26Z".
pub fn date(unix: i64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64)).to_string()
}

/// 1536 -> "1.5KiB".
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_sizes() {
        assert_eq!(super::human_size(0), "0B");
        assert_eq!(super::human_size(1023), "1023B");
        assert_eq!(super::human_size(1536), "1.5KiB");
        assert_eq!(super::human_size(3 << 30), "3.0GiB");
    }
}
