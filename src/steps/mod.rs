//! The step kinds of the build graph, one file each.
