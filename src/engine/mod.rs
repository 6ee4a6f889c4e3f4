//! The incremental engine: a build is a DAG of pure steps; each step's
//! fingerprint decides whether it runs; only what changed is rebuilt.
//!
//! * [`step`] — the contract every step kind implements;
//! * [`fingerprint`] — what goes into a fingerprint, and `--explain`;
//! * [`state`] — the one build state under `target/.scone`: what changed
//!   since the last build, and the stat cache;
//! * [`stat`] — what the state remembers of a path;
//! * [`id`], [`record`] — a step's name, and what its run leaves;
//! * [`store`] — blobs and action records (the action cache);
//! * [`gc`] — removing what the state no longer refers to;
//! * [`remote`] — the remote tier behind the store (a shared cache);
//! * [`publish`] — atomic publishing of outputs under `target/`;
//! * [`scheduler`] — parallel execution on a rayon pool, reusing unaffected steps;
//! * `run` — one step: fingerprint, cache lookups, run, publish;
//! * [`session`] — one build in a target folder: its lock, store and state;
//! * [`lock`] — one build per `target/` at a time;
//! * [`seal_key`] — what binds `target/.scone` to the user who built it;
//! * [`events`] — what the CLI is told.
//!
//! The engine knows nothing of a step's internals.

mod dep;
pub mod dep_memo;
pub mod events;
pub mod fingerprint;
pub mod gc;
pub mod id;
pub mod inputs;
pub mod lock;
pub mod publish;
pub mod record;
pub mod remote;
mod run;
pub mod scheduler;
pub mod seal_key;
pub mod session;
pub mod stat;
pub mod state;
pub mod step;
pub mod store;
pub mod wire;

pub use dep::Dep;
pub use events::{Event, EventSink, Ran, Status};
pub use remote::{Lookup, RemoteTier};
pub use scheduler::{workers, BuildReport, EngineError, EngineOptions, Node, Reuse, MOST_JOBS};
pub use session::Session;
pub use step::{
    BlobSource, DepFields, Input, InputKind, Prepared, Publish, PublishFile, ResolvedInput, Step,
    StepContext, StepError, StepId, StepOutput,
};
pub use store::{ActionRecord, Published, Store};
