//! Test support: dockerd (to be written).
