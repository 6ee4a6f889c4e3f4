//! Test support: registry (to be written).
