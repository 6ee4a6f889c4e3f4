//! Manifests → the step DAG.
