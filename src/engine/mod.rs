//! The incremental engine: a build is a DAG of pure steps; each step's
//! fingerprint decides whether it runs; only what changed is rebuilt.
//!
//! * [`step`] — the contract every step kind implements;
//! * [`fingerprint`] — what goes into a fingerprint, and `--explain`;
//! * [`statcache`] — so a no-op build hashes nothing;
//! * [`store`] — blobs, action records, per-step state under `target/.scone/`;
//! * [`index`] — the last state of every step, read lazily;
//! * [`memo`] — what a mesh step read of its deps, kept across runs;
//! * [`remote`] — the remote tier behind the store (a shared cache);
//! * [`publish`] — atomic publishing of outputs under `target/`;
//! * [`scheduler`] — parallel execution on a rayon pool, reusing unaffected steps;
//! * `run` — one step: fingerprint, cache lookups, run, publish;
//! * [`lock`] — one build per `target/` at a time;
//! * [`events`] — what the CLI is told.
//!
//! The engine knows nothing of a step's internals.

mod dep;
pub mod events;
pub mod fingerprint;
pub mod index;
pub mod inputs;
pub mod lock;
pub mod memo;
pub mod noop;
pub mod publish;
mod record_codec;
pub mod remote;
mod run;
pub mod scheduler;
pub mod session;
pub mod shards;
pub mod statcache;
pub mod step;
pub mod store;
pub mod wire;

pub use dep::Dep;
pub use events::{Event, EventSink, Status};
pub use remote::{Lookup, RemoteTier};
pub use scheduler::{build, build_in, BuildReport, EngineError, EngineOptions, Node, Reuse};
pub use session::{Saving, Session};
pub use step::{
    BlobSource, DepFields, DepReads, Input, InputKind, Prepared, Publish, PublishFile,
    ResolvedInput, Step, StepContext, StepError, StepId, StepOutput,
};
pub use store::{ActionRecord, Published, Store};
