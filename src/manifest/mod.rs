//! Service manifests and Meshfiles: parsing, templating and validation.
