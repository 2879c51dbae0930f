//! IMAP4rev2 (RFC 9051) with IMAP4rev1 (RFC 3501) compatibility: framing, command parsing and
//! the session logic that answers commands from the store.
#![forbid(unsafe_code)]

pub mod command;
pub mod frame;
pub mod parse;
pub mod time;

pub use command::*;
pub use frame::{Frame, Framer, Limits, Refusal};
pub use parse::{parse_command, parse_command_owned, ParseError};

mod encode;
pub mod names;
mod refusal;
pub mod session;

pub use refusal::refused_connection;
pub use session::{AuthFailure, Config, Environment, Fact, Principal, Progress, Session};
