//! Service manifests and Meshfiles: parsing, templating and validation.
//!
//! `model` holds the typed manifests; `located` the line/column wrapper every
//! error points with.

pub mod diag;
pub mod located;
pub mod model;

pub use diag::{Diagnostic, Diagnostics, ErrorKind};
pub use located::{Located, Pos};
pub use model::*;
