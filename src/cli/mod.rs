//! The command-line front end: argument types, dispatch, human and JSON output.

pub mod args;
pub mod cas;
pub mod check;
pub mod enclave;
