//! Test support: tools (to be written).
