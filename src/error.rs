//! The library's typed errors. Only `main` turns them into exit codes (2 bad input or usage,
//! 1 refused or failed verification, 3 ledger unavailable).

use std::fmt;

use crate::rules::Refusal;
use crate::store::StoreError;

#[derive(Debug)]
pub enum Error {
    /// The command line itself is wrong.
    Usage(String),
    /// Submitted data is malformed. `place` names where ("events.ndjson line 7").
    Input { place: String, message: String },
    /// A rule refused an event. `place` names the input line, when there is one.
    Refused {
        place: Option<String>,
        refusal: Box<Refusal>,
    },
    /// `import --keep-going` skipped refused events (exit code 1).
    SomeRefused(String),
    /// `verify` or `verify-proof` found a problem.
    Verification(String),
    /// The ledger cannot be read or written.
    Store(StoreError),
    /// Writing the answer failed (a closed pipe, a full disk).
    Output(std::io::Error),
}

impl Error {
    pub fn input(place: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Input {
            place: place.into(),
            message: message.into(),
        }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::Input { .. } => 2,
            Error::Refused { .. } | Error::SomeRefused(_) | Error::Verification(_) => 1,
            Error::Store(_) | Error::Output(_) => 3,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(message) => write!(f, "{message}"),
            Error::Input { place, message } => write!(f, "{place}: {message}"),
            Error::Refused {
                place: Some(place),
                refusal,
            } => write!(f, "{place}: {refusal}"),
            Error::Refused {
                place: None,
                refusal,
            } => write!(f, "{refusal}"),
            Error::SomeRefused(message) => write!(f, "{message}"),
            Error::Verification(message) => write!(f, "verification failed: {message}"),
            Error::Store(error) => write!(f, "{error}"),
            Error::Output(error) => write!(f, "cannot write the output: {error}"),
        }
    }
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Error {
        Error::Store(error)
    }
}

impl std::error::Error for Error {}
