//! What a session says of the services it lists: their MRENCLAVEs and fspf
//! tags, as CAS will check them.

use serde::Deserialize;

/// A service entry of a session.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct SessionService {
    pub name: String,
    #[serde(default)]
    pub image_name: Option<String>,
    #[serde(default)]
    pub mrenclaves: Vec<String>,
    #[serde(default)]
    pub fspf_tag: Option<String>,
}

#[derive(Deserialize)]
struct Services {
    #[serde(default)]
    services: Vec<SessionService>,
}

/// The services of a session (any YAML style); `None` when it does not parse.
pub fn services(yaml: &str) -> Option<Vec<SessionService>> {
    serde_saphyr::from_str::<Services>(yaml)
        .ok()
        .map(|s| s.services)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_are_read_with_their_measurements() {
        let yaml = "name: \"ns\"\nversion: \"0.3.10\"\nservices:\n  - name: \"a\"\n    image_name: \"img\"\n    mrenclaves: [\"aa\", \"bb\"]\n    command: \"x\"\n    fspf_tag: \"cc\"\nimages:\n  - name: \"img\"\n";
        let s = services(yaml).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].mrenclaves, ["aa", "bb"]);
        assert_eq!(s[0].fspf_tag.as_deref(), Some("cc"));
        assert!(services("[").is_none());
    }
}
