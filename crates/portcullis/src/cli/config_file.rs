//! Loading the config file for a command, with a missing file explained: most commands need
//! it, and the first thing a new operator runs is likely a command without one.

use std::path::Path;

use portcullis_config::{Config, CONFIG_ENV};

use crate::cli::Failure;

pub fn load(path: &Path) -> Result<Config, Failure> {
    if !path.exists() {
        return Err(Failure(format!(
            "there is no config file at {}; create one with `portcullis init` (or try `portcullis serve --dev`), or point --config or ${CONFIG_ENV} at yours",
            path.display()
        )));
    }
    Config::load(path).map_err(Failure::from)
}
