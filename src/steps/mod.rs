//! The step kinds of the build graph, one file each, each a pure function of its
//! declared inputs (see [`crate::engine::step`]):
//!
//! ```text
//! per service:  copy ──▶ layer ──▶ image ──▶ sign ─┐
//!                                                  ├─▶ policy ──▶ chart   (per mesh)
//!               base (resolve + fetch, shared) ──▶ image
//! apply adds:   policy ──▶ upload ──▶ push (images) ──▶ chart
//! ```

pub mod base;
pub mod chart;
pub mod copy;
pub mod image;
pub mod layer;
pub mod packages;
pub mod policy;
pub mod provenance;
pub mod push;
pub mod sbom;
pub mod sign;
pub mod upload;

use crate::engine::StepError;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Canonical JSON of a parameter value (sorted keys through serde_json's map).
pub(crate) fn param<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .map(|v| v.to_string())
        .unwrap_or_default()
}

/// A step's record as JSON.
pub(crate) fn to_record<T: Serialize>(value: &T) -> Result<serde_json::Value, StepError> {
    serde_json::to_value(value).map_err(|e| StepError::context("internal: encoding record", e))
}

/// An upstream record, typed.
pub(crate) fn from_record<T: DeserializeOwned>(value: &serde_json::Value) -> Result<T, StepError> {
    serde_json::from_value(value.clone())
        .map_err(|e| StepError::context("internal: decoding an upstream record", e))
}

/// The path inside the image of a file copied from `label` under `pwd`.
pub(crate) fn image_path(pwd: &str, label: &str) -> String {
    let pwd = pwd.trim_matches('/');
    if pwd.is_empty() {
        label.to_string()
    } else {
        format!("{pwd}/{label}")
    }
}
