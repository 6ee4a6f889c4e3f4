//! OCI images: deterministic layers, image layouts, base images, registries, Docker.
