//! Wall-clock times as the store, the events and the admin API carry them: Unix seconds (or
//! milliseconds). A clock set before 1970 reads as 1970, never as an error.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn seconds(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

pub fn from_seconds(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64)
}

pub fn now_seconds() -> i64 {
    seconds(SystemTime::now())
}

pub fn now_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
