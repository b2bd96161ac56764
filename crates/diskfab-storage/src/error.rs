//! The error type shared by every diskfab layer, with its mapping to exit codes.

use std::io;

/// Result alias used throughout diskfab.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, classified so that the CLI can choose an exit code.
///
/// Exit codes (the table is in the CLI's `exitcode.rs` and docs/cli.md): 2 usage error, 3 bad
/// or unsupported image, 4 host I/O error, 5 the operation failed, 6 refused by the trust
/// policy. (0 and 1 are success and a negative answer, never errors.)
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error from the host, with what we were doing.
    #[error("{context}: {source}")]
    Io {
        /// What diskfab was doing.
        context: String,
        /// The underlying OS error.
        #[source]
        source: io::Error,
    },
    /// The image (or a structure inside it) is corrupt or hostile.
    #[error("bad image: {0}")]
    BadImage(String),
    /// The image uses something diskfab does not support.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A path or object does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A path or object already exists.
    #[error("already exists: {0}")]
    Exists(String),
    /// An argument is invalid (usage error).
    #[error("{0}")]
    Invalid(String),
    /// A write was attempted on something opened read-only.
    #[error("read-only: {0}")]
    ReadOnly(String),
    /// The filesystem or image has no room left.
    #[error("no space left: {0}")]
    NoSpace(String),
    /// Refused by diskfab's trust policy: a backing or data file the user has not trusted, a
    /// sandbox that cannot be set up. The message names the file, the rule and the flag that
    /// allows it.
    #[error("refused: {0}")]
    Denied(String),
    /// Any other failure of the requested operation.
    #[error("{0}")]
    Failed(String),
}

impl Error {
    /// Wraps an `io::Error` with context.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Shorthand for [`Error::BadImage`].
    pub fn bad(msg: impl Into<String>) -> Self {
        Error::BadImage(msg.into())
    }

    /// The process exit code this error maps to: 2 usage, 3 bad or unsupported image, 4 host
    /// I/O, 5 the operation failed (not found, exists, read-only, no space in the image, any
    /// other failure), 6 refused by the trust policy.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Invalid(_) => 2,
            Error::BadImage(_) | Error::Unsupported(_) => 3,
            Error::Io { .. } => 4,
            Error::NotFound(_)
            | Error::Exists(_)
            | Error::ReadOnly(_)
            | Error::NoSpace(_)
            | Error::Failed(_) => 5,
            Error::Denied(_) => 6,
        }
    }

    /// Prefixes the message with more context (e.g. the image or path), keeping the class.
    pub fn context(self, ctx: impl std::fmt::Display) -> Self {
        match self {
            Error::Io { context, source } => Error::Io {
                context: format!("{ctx}: {context}"),
                source,
            },
            Error::BadImage(m) => Error::BadImage(format!("{ctx}: {m}")),
            Error::Unsupported(m) => Error::Unsupported(format!("{ctx}: {m}")),
            Error::NotFound(m) => Error::NotFound(format!("{ctx}: {m}")),
            Error::Exists(m) => Error::Exists(format!("{ctx}: {m}")),
            Error::Invalid(m) => Error::Invalid(format!("{ctx}: {m}")),
            Error::ReadOnly(m) => Error::ReadOnly(format!("{ctx}: {m}")),
            Error::NoSpace(m) => Error::NoSpace(format!("{ctx}: {m}")),
            Error::Denied(m) => Error::Denied(format!("{ctx}: {m}")),
            Error::Failed(m) => Error::Failed(format!("{ctx}: {m}")),
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io {
            context: "I/O error".into(),
            source: e,
        }
    }
}
