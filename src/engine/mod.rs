//! The incremental engine: fingerprints, stat cache, action cache, scheduler.
