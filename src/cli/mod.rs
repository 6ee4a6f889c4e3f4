//! The command-line front end: argument types, dispatch, human and JSON output.

pub mod args;
pub mod build;
pub mod cas;
pub mod check;
pub mod clean;
pub mod dev;
pub mod enclave;
pub mod graph;
pub mod invocation;
pub mod output;
pub mod run;
