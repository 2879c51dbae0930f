//! [`Failure`]: how every command fails. docs/operations.md: one plain sentence on stderr that says what
//! to do, and a non-zero exit code (`main` prints it).

/// An error for the operator: one plain sentence that says what to do.
#[derive(Debug)]
pub struct Failure(pub String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}
