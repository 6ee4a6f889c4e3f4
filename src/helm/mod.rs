//! The Helm chart of a mesh, rendered from embedded (or user) Handlebars templates.
