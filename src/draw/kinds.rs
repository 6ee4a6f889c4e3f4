//! One colour per step kind, the same in the step graph and the timings
//! page (an Okabe–Ito palette: told apart with most colour blindnesses; the
//! SBOM and provenance steps take two of Paul Tol's, also safe).

/// The step kinds in the order of a build, each with its colour.
pub const KINDS: &[(&str, &str)] = &[
    ("base", "#8c8c8c"),
    ("packages", "#c4c4c4"),
    ("copy", "#56b4e9"),
    ("layer", "#0072b2"),
    ("image", "#009e73"),
    ("sign", "#e69f00"),
    ("sbom", "#44aa99"),
    ("provenance", "#332288"),
    ("policy", "#cc79a7"),
    ("upload", "#b59f00"),
    ("push", "#882255"),
    ("chart", "#d55e00"),
];

/// The colour of a step kind (grey for a kind this list does not know).
pub fn colour(kind: &str) -> &'static str {
    KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or("#555555", |(_, c)| c)
}

/// Where `kind` comes in a build (unknown kinds last), for sorting.
pub fn order(kind: &str) -> usize {
    KINDS
        .iter()
        .position(|(k, _)| *k == kind)
        .unwrap_or(KINDS.len())
}

/// Whether steps of `kind` belong to one service (their unit is its
/// `build.name`), as opposed to a mesh (`policy`, `upload`, `chart`) or a
/// base image (`base`, `packages`).
pub fn of_a_service(kind: &str) -> bool {
    matches!(
        kind,
        "copy" | "layer" | "image" | "sign" | "sbom" | "provenance" | "push"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_colour() {
        let mut colours: Vec<&str> = KINDS.iter().map(|(_, c)| *c).collect();
        colours.sort();
        colours.dedup();
        assert_eq!(colours.len(), KINDS.len());
        assert_eq!(colour("layer"), "#0072b2");
        assert_eq!(colour("unheard-of"), "#555555");
        assert!(order("copy") < order("chart"));
    }
}
