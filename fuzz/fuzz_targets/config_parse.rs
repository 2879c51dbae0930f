//! The config file: arbitrary text through `Config::parse` (TOML, then validation), and the
//! unit parsers it uses on their own. An error must be a message, never a panic; a config that
//! parses must keep the promises the rest of the server relies on.
#![no_main]
#![forbid(unsafe_code)]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use portcullis_config::{parse_duration, parse_network, parse_size, Config};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match Config::parse(Path::new("/etc/portcullis/portcullis.toml"), &text) {
        Ok(config) => {
            assert!(!config.hostname.is_empty());
            assert!(config.limits.max_line_length >= 512, "{}", config.limits.max_line_length);
            assert!(config.tls.cert.is_absolute() && config.tls.key.is_absolute() && config.data_dir.is_absolute());
            let _ = format!("{config:?}");
        }
        Err(e) => {
            let message = e.to_string();
            assert!(!message.is_empty());
        }
    }
    for line in text.lines().take(8) {
        let _ = parse_size(line);
        let _ = parse_duration(line);
        let _ = parse_network(line);
    }
});
