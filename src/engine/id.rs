//! A step's identity, named everywhere a step is: in the plan, the build
//! state, the action cache and every message.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A step's identity: its kind (`copy`, `layer`, …) and unit (service or mesh).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StepId {
    pub kind: String,
    pub unit: String,
}

impl StepId {
    pub fn new(kind: &str, unit: &str) -> StepId {
        StepId {
            kind: kind.to_string(),
            unit: unit.to_string(),
        }
    }
}

impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.unit)
    }
}
