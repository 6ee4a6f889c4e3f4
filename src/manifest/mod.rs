//! Service manifests and Meshfiles: parsing, templating and validation.
//!
//! `model` holds the typed manifests; `located` the line/column wrapper every
//! error points with.

pub mod codec;
mod copy_links;
pub mod diag;
pub mod discover;
pub mod link;
pub mod link_secrets;
pub mod located;
pub mod model;
pub mod parse;
pub mod redact;
pub mod secret_refs;
mod secret_scan;
pub mod snippet;
pub mod suggest;
pub mod suspect;
pub mod template;
pub mod tolerance;
pub mod unimplemented;
pub mod validate;
pub mod validate_paths;
pub mod validate_values;

pub use diag::{Diagnostic, Diagnostics, ErrorKind, Level};
pub use located::{Located, Pos};
pub use model::*;
