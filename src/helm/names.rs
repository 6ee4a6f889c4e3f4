//! Kubernetes names: mesh service names (`python_app`) become DNS-1123 labels (`python-app`),
//! port names become IANA service names. Each function says whether it changed the name so
//! the caller can warn.

/// The longest DNS-1123 label.
const LABEL_MAX: usize = 63;
/// The longest IANA service name (a container port name).
const PORT_NAME_MAX: usize = 15;

/// Turns `name` into a DNS-1123 label usable as the name of any Kubernetes object (Deployment,
/// Service, container, label value): lowercase ASCII letters, digits and `-`, at most 63
/// characters, starting with a letter (RFC 1035, which Services require) and ending with a
/// letter or digit. Every other character becomes `-`. Returns the label and whether it
/// differs from `name`. The label is empty when `name` has no letter or digit at all.
pub fn dns1123(name: &str) -> (String, bool) {
    let mut label = replace_invalid(name);
    label = label.trim_matches('-').to_owned();
    if label.starts_with(|c: char| c.is_ascii_digit()) {
        label.insert_str(0, "svc-");
    }
    label.truncate(LABEL_MAX);
    let label = label.trim_end_matches('-').to_owned();
    let changed = label != name;
    (label, changed)
}

/// Turns a port name into an IANA service name (what Kubernetes wants for a port's `name`):
/// at most 15 lowercase letters, digits and single `-`, with at least one letter. An empty or
/// hopeless name becomes `<protocol>-<port>` (`tcp-8080`). Returns the name and whether it
/// differs from `name`.
pub fn port_name(name: &str, protocol: &str, port: u16) -> (String, bool) {
    let mut cleaned = String::with_capacity(name.len());
    for c in replace_invalid(name).chars() {
        if !(c == '-' && cleaned.ends_with('-')) {
            cleaned.push(c);
        }
    }
    let mut cleaned = cleaned.trim_matches('-').to_owned();
    cleaned.truncate(PORT_NAME_MAX);
    let mut cleaned = cleaned.trim_end_matches('-').to_owned();
    if !cleaned.chars().any(|c| c.is_ascii_lowercase()) {
        cleaned = format!("{}-{port}", protocol.to_ascii_lowercase());
    }
    let changed = cleaned != name;
    (cleaned, changed)
}

/// Lowercases ASCII letters and replaces everything but `[a-z0-9-]` with `-`.
fn replace_invalid(name: &str) -> String {
    name.chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Whether `name` already is a label [`dns1123`] would leave unchanged.
pub fn is_dns1123(name: &str) -> bool {
    !name.is_empty() && !dns1123(name).1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_service_name_becomes_dns1123() {
        assert_eq!(dns1123("python_app"), ("python-app".to_owned(), true));
        assert_eq!(dns1123("python-app"), ("python-app".to_owned(), false));
    }

    #[test]
    fn namespace_is_lowercased() {
        assert_eq!(dns1123("myPythonApp"), ("mypythonapp".to_owned(), true));
    }

    #[test]
    fn edges_are_trimmed_and_digits_get_a_letter_first() {
        assert_eq!(dns1123("_a.b_"), ("a-b".to_owned(), true));
        assert_eq!(dns1123("9lives"), ("svc-9lives".to_owned(), true));
        assert_eq!(dns1123("___"), (String::new(), true));
        assert_eq!(dns1123("größe"), ("gr--e".to_owned(), true));
    }

    #[test]
    fn long_names_are_cut_to_63_without_a_trailing_dash() {
        let long = format!("{}_{}", "a".repeat(62), "b".repeat(10));
        let (label, changed) = dns1123(&long);
        assert!(changed);
        assert_eq!(label, "a".repeat(62));
        let (label, _) = dns1123(&"x".repeat(100));
        assert_eq!(label.len(), 63);
        assert!(is_dns1123(&label));
    }

    #[test]
    fn port_names_follow_iana() {
        assert_eq!(port_name("http", "TCP", 80), ("http".to_owned(), false));
        assert_eq!(
            port_name("Web__Api", "TCP", 80),
            ("web-api".to_owned(), true)
        );
        assert_eq!(port_name("", "UDP", 53), ("udp-53".to_owned(), true));
        assert_eq!(
            port_name("8080", "TCP", 8080),
            ("tcp-8080".to_owned(), true)
        );
        let (long, changed) = port_name("a-very-long-port-name", "TCP", 1);
        assert!(changed);
        assert_eq!(long, "a-very-long-por");
    }
}
