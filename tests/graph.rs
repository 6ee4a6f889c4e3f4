//! `scone graph`: the planned DAG of design §2, before anything is built.

mod support;

use std::collections::BTreeSet;

fn graph(format: &str) -> String {
    let out = support::scone()
        .args(["graph", "-f"])
        .arg(support::fixtures().join("multi/mesh.yml"))
        .args(["--format", format])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn three_services_give_three_chains_a_policy_and_a_chart() {
    let g: serde_json::Value = serde_json::from_str(&graph("json")).unwrap();
    let nodes: BTreeSet<String> = g["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect();
    let edges: BTreeSet<(String, String)> = g["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["from"].as_str().unwrap().to_string(),
                e["to"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let services = ["multi_a", "multi_b", "multi_c"];
    let mut expected_nodes = BTreeSet::new();
    let mut expected_edges = BTreeSet::new();
    let e = |a: &str, b: &str| (a.to_string(), b.to_string());
    for s in services {
        for kind in ["copy", "layer", "image", "sign"] {
            expected_nodes.insert(format!("{kind}:{s}"));
        }
        expected_edges.insert(e(&format!("copy:{s}"), &format!("layer:{s}")));
        expected_edges.insert(e(&format!("layer:{s}"), &format!("image:{s}")));
        expected_edges.insert(e(&format!("image:{s}"), &format!("sign:{s}")));
        expected_edges.insert(e(&format!("copy:{s}"), &format!("sign:{s}")));
        expected_edges.insert(e("base:default:python", &format!("image:{s}")));
        expected_edges.insert(e(&format!("sign:{s}"), "policy:multi"));
        expected_edges.insert(e(&format!("image:{s}"), "chart:multi"));
    }
    expected_nodes.insert("policy:multi".into());
    expected_nodes.insert("chart:multi".into());
    expected_nodes.insert("base:default:python".into());
    expected_edges.insert(e("policy:multi", "chart:multi"));
    assert_eq!(nodes.len(), 3 * 4 + 2 + 1, "{nodes:?}");
    assert_eq!(nodes, expected_nodes);
    assert_eq!(edges, expected_edges);
}

#[test]
fn dot_and_mermaid_name_the_same_nodes() {
    let dot = graph("dot");
    assert!(dot.starts_with("digraph scone {"));
    assert!(dot.contains("\"sign:multi_b\" -> \"policy:multi\";"));
    let mermaid = graph("mermaid");
    assert!(mermaid.starts_with("graph LR"));
    assert_eq!(mermaid.matches("-->").count(), dot.matches("->").count());
    assert!(mermaid.contains("[\"chart:multi\"]"));
}
