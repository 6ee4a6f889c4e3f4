//! Test support: monorepo generator (to be written).
