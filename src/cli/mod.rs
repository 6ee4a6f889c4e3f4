//! The command-line front end: argument types, dispatch, human and JSON output.

pub mod args;
pub mod build;
pub mod cas;
pub mod check;
pub mod clean;
pub mod defaults;
pub mod deployed;
pub mod dev;
pub mod enclave;
pub mod folders;
pub mod graph;
pub mod help;
pub mod invocation;
pub mod output;
pub mod plan;
pub mod reference;
pub mod refusals;
pub mod replay;
pub mod run;
pub mod setup;
pub mod timings;
pub mod verify;
pub mod verify_image;
pub mod verify_session;
pub mod verify_sources;

use scone::manifest::{Diagnostic, ErrorKind, Pos};

/// A build that cannot succeed as asked, and what to do instead (exit 1):
/// a diagnostic of code `build` whose `help` is the hint.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Refused {
    pub message: String,
    pub hint: String,
}

impl Refused {
    /// As a diagnostic in no file.
    pub fn diagnostic(&self) -> Diagnostic {
        Diagnostic::new(ErrorKind::Build, "", Pos::default(), &self.message).with_hint(&self.hint)
    }
}

/// A command line that clap accepts but scone cannot run (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct UsageError {
    pub message: String,
    pub hint: Option<String>,
}

impl UsageError {
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> UsageError {
        UsageError {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    /// As a diagnostic in no file.
    pub fn diagnostic(&self) -> Diagnostic {
        let d = Diagnostic::new(ErrorKind::Usage, "", Pos::default(), &self.message);
        match &self.hint {
            Some(h) => d.with_hint(h),
            None => d,
        }
    }
}
