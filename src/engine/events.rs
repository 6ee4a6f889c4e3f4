//! What the engine reports while it runs. The CLI turns these into cargo-style
//! lines on stderr or JSON messages on stdout (design §4).

use super::id::StepId;
use serde_json::Value;
use std::time::Instant;

/// How a step ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Its fingerprint had an intact cached result (or an effect had nothing to do).
    Fresh,
    /// It ran.
    Built,
    /// Its result came from the remote cache (verified, now in the local store).
    Remote,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Fresh => "fresh",
            Status::Built => "built",
            Status::Remote => "remote",
            Status::Failed => "failed",
        }
    }
}

/// When and on which worker a step was checked or run (for `--timings`).
#[derive(Clone, Copy, Debug)]
pub struct Ran {
    /// When its run began: resolving its inputs, before any cache lookup
    /// (`ms` counts from here).
    pub started: Instant,
    /// The index of the pool worker it ran on.
    pub worker: Option<usize>,
}

/// One event.
#[derive(Clone, Debug)]
pub enum Event {
    /// A step starts running (not sent for fresh steps).
    Started { id: StepId },
    /// A step finished.
    Finished {
        id: StepId,
        status: Status,
        fingerprint: String,
        /// The step's record (digests); empty for failures.
        outputs: Value,
        /// The first changed input, for built steps; the error for failures.
        why: Option<String>,
        ms: u64,
        /// When and where it was checked or run; `None` for a step reused
        /// from the last build unchecked (it did not run).
        ran: Option<Ran>,
    },
    /// Something the user should know that does not fail the build (e.g. the
    /// remote cache is unreachable).
    Warning { message: String },
}

/// Receives events; called from worker threads.
pub trait EventSink: Sync {
    fn event(&self, event: Event);

    /// Whether `Finished` events of steps reused from the last build are
    /// wanted at all: a change to one service of a thousand reuses thousands
    /// of steps, each event a few allocations; `false` sends none.
    fn wants_reused(&self) -> bool {
        true
    }

    /// Whether `Finished` events of reused steps need their outputs (which
    /// costs parsing their records); `false` sends them `null`.
    fn wants_outputs(&self) -> bool {
        true
    }

    /// Whether `Finished` events of built steps need `why` (which costs
    /// reading the step's last input list); `false` sends them an empty one.
    fn wants_why(&self) -> bool {
        true
    }
}

/// Drops every event.
pub struct Silent;

impl EventSink for Silent {
    fn event(&self, _: Event) {}

    fn wants_reused(&self) -> bool {
        false
    }

    fn wants_why(&self) -> bool {
        false
    }
}
