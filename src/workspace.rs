//! Workspace discovery: the root, `scone.toml`, member manifests.
