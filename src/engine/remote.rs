//! The remote tier of the store: where the engine looks after a local miss, and
//! where it sends what it built.
//!
//! The engine only knows this contract; `crate::remote` implements it over an
//! OCI registry or a Bazel HTTP cache. Two rules make a remote safe to use:
//!
//! * a remote result is used only after every blob it names has been
//!   downloaded into the local store **and verified** against its digest; a
//!   bad blob is a miss (the step runs locally), never a wrong result;
//! * a remote never fails a build: an unreachable or slow remote turns the
//!   tier off for the rest of the build with one warning, and the build goes on
//!   locally; a step whose lookup is slow is built locally, and its result, if
//!   it arrives later, is still stored.

use super::store::{ActionRecord, Store};

/// What a lookup found.
#[derive(Debug)]
pub enum Lookup {
    /// The record, with every blob it names now intact in the local store.
    Hit(ActionRecord),
    /// The remote has no (usable) entry for this fingerprint.
    Miss,
}

/// A remote tier. Called from the scheduler's worker threads.
pub trait RemoteTier: Send + Sync {
    /// Looks a fingerprint up; on a hit, downloads and verifies every blob of
    /// the record into `store` before returning it. Problems (at most one
    /// warning per problem for the whole build) go to `warn`.
    fn fetch(
        &self,
        step: &str,
        fingerprint: &str,
        store: &Store,
        warn: &mut dyn FnMut(String),
    ) -> Lookup;

    /// Offers a record the build just made (its blobs are in `store`). Writes
    /// happen in the background, and only if the tier is configured to write.
    fn offer(&self, record: &ActionRecord, store: &Store);

    /// Called once the steps are done: stores the results that arrived after
    /// their step stopped waiting (bounded), and returns the warnings of the
    /// whole build, at most one per distinct problem. Uploads may go on.
    fn finish(&self, store: &Store) -> Vec<String>;
}
