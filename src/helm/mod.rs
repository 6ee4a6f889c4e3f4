//! The Helm chart of a mesh, rendered from embedded (or user) Handlebars templates.
//!
//! [`render`] turns a [`ChartInput`] (plain data: namespace, session hash, CAS address,
//! services with image digests and ports) into a [`RenderedChart`]: the chart's files and,
//! per service, plain manifests. [`write_chart`] and [`write_manifests`] put them on disk
//! atomically. Kubernetes names are DNS-1123 ([`dns1123`]); see `docs/helm.md`.

mod checks;
mod error;
mod input;
mod model;
mod names;
mod native;
mod render;
mod templates;
mod write;

pub use checks::is_semver;
pub use error::{HelmError, TemplateLocation};
pub use input::{
    image_repository, ChartInput, ChartPort, ChartResources, ChartService, LasAddr, SgxDevice,
    DEFAULT_CHART_PATH, DEFAULT_CHART_VERSION, SCONE_SGX_RESOURCE,
};
pub use names::{dns1123, is_dns1123, port_name};
pub use render::{prepare_chart, render, render_chart, render_with, PreparedChart, RenderedChart};
pub use templates::{TemplateFile, TemplateSet};
pub use write::{write_chart, write_manifests, write_tree};
