//! The commands of `portcullis`, one file per command group; `main.rs` parses the command line
//! and calls the one that was asked for. The other files are leaves the commands share.

// Commands.
pub mod account;
pub mod alias;
pub mod app_password;
pub mod ban;
pub mod check;
pub mod dkim;
pub mod dns;
pub mod domain;
pub mod init;
pub mod queue;
pub mod serve;
pub mod status;
pub mod store;
pub mod totp;

// Leaves.
pub mod admin_api;
pub mod config_file;
pub mod failure;
pub mod runtime;
pub mod store_access;
pub mod units;

pub use failure::Failure;
