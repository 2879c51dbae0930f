//! The pure logic of the outbound queue (issue 15), without storage and without I/O: the
//! store keeps the queue, the server's queue runner asks these functions what to do.
//!
//! - [`RetrySchedule`]: after a temporary failure, when to try again ([`NextStep`]), when a
//!   delay notice is due, when the message is given up.
//! - [`notice`]: the delivery status notification (RFC 3464 multipart/report) for the
//!   recipients that failed, are delayed, or were delivered or relayed with NOTIFY=SUCCESS
//!   (RFC 3461), or `None` when nobody is owed one: never to the null sender, never about
//!   an automatic message, so no bounce loops.
//! - [`Limiter`]: per-destination concurrency, start rate and a pause after a connection
//!   failure, given the time.
//!
//! What the caller provides: the stored message (envelope with its RFC 3461 parameters in
//! `portcullis-smtp-client`'s types, queued-at time, attempts made, whether a delay notice
//! was sent), each attempt's per-recipient outcome from `portcullis-delivery` mapped to a
//! [`RecipientStatus`], the wall-clock time for schedules and notices and the monotonic
//! time for the limiter, and this server's host name for [`NoticeSettings`].
#![forbid(unsafe_code)]

mod date;
mod limiter;
mod notice;
mod schedule;

pub use date::rfc5322;
pub use limiter::{Admission, DestinationLimits, Limiter};
pub use notice::{
    is_automatic, may_notify, notice, wanted, Notice, NoticeSettings, Original, RecipientStatus, ReportAction,
};
pub use schedule::{NextStep, RetrySchedule};
