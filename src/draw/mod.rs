//! Pictures scone draws itself, as SVG text — no Graphviz, no browser, no
//! font files: the step graph of `scone graph --format svg` ([`graph`]) and
//! the charts of the `--timings` page (`crate::timings`).
//!
//! * [`kinds`] — one colour per step kind, shared by every picture;
//! * [`svg`] — escaping and number formatting for SVG and HTML text;
//! * [`layout`] — a layered (Sugiyama-style) layout of a DAG, left to right;
//! * [`graph`] — the step graph, services collapsed into one box each.

pub mod graph;
pub mod kinds;
pub mod layout;
pub mod svg;
