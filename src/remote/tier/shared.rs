//! [`Shared`]: what the tier's threads share about one remote in one build —
//! the backend, whether it is off or slow, the counters — and its warnings,
//! each given once: the first transport failure turns the remote off
//! ([`Shared::trip`]); the first broken answer is named and every broken answer
//! is a miss ([`Shared::failed`]); a problem many steps share (a pack) is named
//! for the first of them ([`Shared::first`]).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::remote::{Backend, RemoteError};

pub(crate) struct Shared {
    pub(super) backend: Box<dyn Backend>,
    pub(super) url: String,
    pub(super) off: AtomicBool,
    /// A step's own lookup got no answer within its wait: the remote is slow,
    /// and later steps take only what has come, without waiting.
    pub(super) stalled: AtomicBool,
    /// An answer was not what was asked ([`RemoteError::Broken`]): named once.
    pub(super) broken: AtomicBool,
    /// Warning texts (and problems, [`Shared::first`]) already given.
    pub(super) warned: Mutex<BTreeSet<String>>,
    /// Warnings raised off the build's threads, given at the end.
    pub(super) pending: Mutex<Vec<String>>,
    pub(super) hits: AtomicU64,
    pub(super) misses: AtomicU64,
    /// Lookups not made: the remote was off by then.
    pub(super) unasked: AtomicU64,
    pub(super) late: AtomicU64,
    pub(super) indexed: AtomicU64,
    pub(super) downloaded: AtomicU64,
    pub(super) uploaded_entries: AtomicU64,
    pub(super) uploaded_blobs: AtomicU64,
}

/// Why a request gave nothing, as the tier keeps it (a request's result is
/// shared by whoever waits for it, so it is cloned).
#[derive(Clone, Debug)]
pub(crate) enum Failed {
    /// Refused, timed out, HTTP 5xx/4xx, too big: the remote goes off.
    Transport(String),
    /// Answered, but not with what was asked: a miss.
    Broken(String),
}

impl From<RemoteError> for Failed {
    fn from(e: RemoteError) -> Self {
        match e {
            RemoteError::Broken(what) => Failed::Broken(what),
            e => Failed::Transport(e.to_string()),
        }
    }
}

impl Shared {
    pub(super) fn new(backend: Box<dyn Backend>, url: String) -> Shared {
        Shared {
            backend,
            url,
            off: AtomicBool::new(false),
            stalled: AtomicBool::new(false),
            broken: AtomicBool::new(false),
            warned: Mutex::default(),
            pending: Mutex::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            unasked: AtomicU64::new(0),
            late: AtomicU64::new(0),
            indexed: AtomicU64::new(0),
            downloaded: AtomicU64::new(0),
            uploaded_entries: AtomicU64::new(0),
            uploaded_blobs: AtomicU64::new(0),
        }
    }

    /// Turns the tier off after a transport failure; the first one warns.
    pub(super) fn trip(&self, err: &dyn std::fmt::Display) -> Option<String> {
        if self.off.swap(true, Ordering::SeqCst) {
            return None;
        }
        self.once(format!(
            "remote cache {} failed ({err}); building locally without it for the rest of this build",
            self.url
        ))
    }

    /// [`Shared::trip`] on a thread of the tier's: the warning is given at the end.
    pub(super) fn trip_later(&self, err: &RemoteError) {
        if let Some(w) = self.trip(err) {
            self.later(w);
        }
    }

    /// A request that gave nothing: a transport failure trips the tier; the
    /// first broken answer warns (a garbled registry is not taken for an empty
    /// one), and every one is a miss.
    pub(super) fn failed(&self, failed: &Failed) -> Option<String> {
        match failed {
            Failed::Transport(err) => self.trip(err),
            Failed::Broken(what) => (!self.broken.swap(true, Ordering::SeqCst)).then(|| {
                format!(
                    "remote cache {}: {what}; taken as a miss, as is any other broken answer \
                     in this build (the steps build locally)",
                    self.url
                )
            }),
        }
    }

    /// Gives `warning` at the end of the build (raised off the build's threads).
    pub(super) fn later(&self, warning: String) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(warning);
    }

    /// Whether `problem` is new (then it is named; later steps it costs say nothing).
    pub(super) fn first(&self, problem: &str) -> bool {
        self.once(format!("problem: {problem}")).is_some()
    }

    pub(super) fn once(&self, message: String) -> Option<String> {
        let mut warned = self.warned.lock().unwrap_or_else(PoisonError::into_inner);
        warned.insert(message.clone()).then_some(message)
    }
}
