//! `portcullis serve [--dev]`: run every configured listener in the foreground (the server
//! crate does the work); `--dev` first creates, or reuses, a loopback-only instance.

use std::path::Path;

use crate::cli::{config_file, init, Failure};

pub fn run(dev: bool, config_path: &Path) -> Result<(), Failure> {
    let config = if dev { init::dev_instance(Path::new(init::DEV_DIR))? } else { config_file::load(config_path)? };
    portcullis_server::serve(config).map_err(Failure)
}
