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
        for kind in ["copy", "layer", "image", "sign", "sbom", "provenance"] {
            expected_nodes.insert(format!("{kind}:{s}"));
        }
        expected_edges.insert(e(&format!("image:{s}"), &format!("sbom:{s}")));
        expected_edges.insert(e("packages:default:python", &format!("sbom:{s}")));
        for from in ["image", "sign", "sbom"] {
            expected_edges.insert(e(&format!("{from}:{s}"), &format!("provenance:{s}")));
        }
        expected_edges.insert(e("packages:default:python", &format!("provenance:{s}")));
        expected_edges.insert(e(&format!("copy:{s}"), &format!("layer:{s}")));
        expected_edges.insert(e(&format!("layer:{s}"), &format!("image:{s}")));
        expected_edges.insert(e(&format!("image:{s}"), &format!("sign:{s}")));
        expected_edges.insert(e("base:default:python", &format!("image:{s}")));
        expected_edges.insert(e(&format!("sign:{s}"), "policy:multi"));
        expected_edges.insert(e(&format!("image:{s}"), "chart:multi"));
    }
    expected_nodes.insert("policy:multi".into());
    expected_nodes.insert("chart:multi".into());
    expected_nodes.insert("base:default:python".into());
    expected_nodes.insert("packages:default:python".into());
    expected_edges.insert(e("base:default:python", "packages:default:python"));
    expected_edges.insert(e("policy:multi", "chart:multi"));
    // 3 × (copy, layer, image, sign, sbom, provenance), policy, chart, base,
    // packages.
    assert_eq!(nodes.len(), 3 * 6 + 2 + 2, "{nodes:?}");
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

/// `scone graph --format svg` with `args`, in `cwd`: the picture.
fn svg(sb: &support::Sandbox, cwd: &std::path::Path, args: &[&str]) -> String {
    let out = sb
        .scone(cwd)
        .arg("graph")
        .args(args)
        .args(["--format", "svg"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The `<title>` of every box (`g` of class `node …`) of a picture that
/// parses as SVG.
fn boxes(picture: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(picture).expect("the picture is well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    for size in ["width", "height"] {
        let value: f64 = root.attribute(size).unwrap().parse().unwrap();
        assert!(value > 0.0);
    }
    doc.descendants()
        .filter(|n| {
            n.has_tag_name("g") && n.attribute("class").is_some_and(|c| c.starts_with("node"))
        })
        .map(|g| {
            g.children()
                .find(|c| c.has_tag_name("title"))
                .and_then(|t| t.text())
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// The width and height a picture says it has.
fn size(picture: &str) -> (u64, u64) {
    let doc = roxmltree::Document::parse(picture).expect("the picture is well-formed XML");
    let root = doc.root_element();
    let number = |name: &str| root.attribute(name).unwrap().parse::<u64>().unwrap();
    (number("width"), number("height"))
}

/// A picture renders in headless Chromium, as an image of its own size with
/// ink on it and every one of `colours` (the kinds' colours) among its
/// pixels; a screenshot of it is kept (`support::browser::artifacts`).
fn renders(picture: &str, name: &str, colours: &[&str]) {
    let rendered = support::browser::render_svg(picture, colours)
        .unwrap_or_else(|| panic!("chromium could not decode {name}"));
    let (width, height) = size(picture);
    assert_eq!((rendered.width, rendered.height), (width, height));
    // More than the frame: boxes, text and edges.
    assert!(
        rendered.inked * 50 > width * height,
        "{name} is nearly blank: {rendered:?}"
    );
    for (colour, pixels) in &rendered.colours {
        assert!(*pixels > 0, "{name}: no pixel of {colour}: {rendered:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(format!("{name}.svg"));
    std::fs::write(&file, picture).unwrap();
    let (w, h) = (width.min(4000) as u32, height.min(4000) as u32);
    support::browser::screenshot(&file, &format!("{name}.png"), w, h);
}

/// Each kind's colour (`scone::draw::kinds`) in a picture of `kinds`.
fn colours(kinds: &[&str]) -> Vec<&'static str> {
    kinds
        .iter()
        .map(|k| scone::draw::kinds::colour(k))
        .collect()
}

#[test]
fn a_broken_picture_does_not_render() {
    // The render check can fail: a picture cut short is no image.
    let sb = support::Sandbox::new();
    let dir = sb.hello_world("hello");
    let picture = svg(&sb, &dir, &["-f", "mesh.yml"]);
    let cut = &picture[..picture.len() / 2];
    assert!(roxmltree::Document::parse(cut).is_err());
    assert_eq!(support::browser::render_svg(cut, &[]), None);
}

#[test]
fn the_svg_of_the_hello_world_has_a_box_per_step_and_renders() {
    let sb = support::Sandbox::new();
    let dir = sb.hello_world("hello");
    let picture = svg(&sb, &dir, &["-f", "mesh.yml"]);
    let mut titles = boxes(&picture);
    titles.sort();
    // One service: drawn step by step.
    let out = sb
        .scone(&dir)
        .args(["graph", "-f", "mesh.yml", "--format", "json"])
        .output()
        .unwrap();
    let g: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut ids: Vec<String> = g["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    assert_eq!(titles, ids);
    assert_eq!(
        picture.matches("<path class=\"e\"").count(),
        g["edges"].as_array().unwrap().len()
    );
    // Kinds keep their colours (as on the timings page).
    assert!(picture.contains("stroke=\"#0072b2\""), "layer is blue");
    let kinds = [
        "base",
        "packages",
        "copy",
        "layer",
        "image",
        "sign",
        "sbom",
        "provenance",
        "policy",
        "chart",
    ];
    renders(&picture, "graph-hello-world", &colours(&kinds));
}

#[test]
fn services_collapse_unless_expanded_and_p_draws_one() {
    let sb = support::Sandbox::new();
    let multi = support::fixtures().join("multi");
    let titles = boxes(&svg(&sb, &multi, &["-f", "mesh.yml"]));
    let services: Vec<&String> = titles
        .iter()
        .filter(|t| t.starts_with("service "))
        .collect();
    assert_eq!(services.len(), 3, "{titles:?}");
    assert!(
        titles.contains(&"service multi_b: copy, layer, image, sign, sbom, provenance".to_string())
    );
    assert_eq!(
        titles.len(),
        3 + 4,
        "three services, a base, its packages, a policy, a chart"
    );
    let expanded = boxes(&svg(&sb, &multi, &["-f", "mesh.yml", "--expand"]));
    assert_eq!(expanded.len(), 3 * 6 + 4);
    let one = boxes(&svg(&sb, &multi, &["-f", "mesh.yml", "-p", "multi_b"]));
    assert!(one.contains(&"sign:multi_b".to_string()), "{one:?}");
    assert!(one
        .iter()
        .all(|t| !t.contains("multi_a") && !t.contains("multi_c")));
}

/// The picture of a 1,000-service mesh stays under this size
/// (docs/cli.md says so).
const MESH_1000_MAX_BYTES: usize = 400_000;

#[test]
fn the_svg_of_a_1000_service_mesh_is_one_block_small_and_renders() {
    use support::monorepo::{generate, service_name, MonorepoOptions};
    let sb = support::Sandbox::new();
    let root = sb.path().join("repo");
    generate(
        &root,
        MonorepoOptions {
            services: 1000,
            files_per_service: 1,
            ..MonorepoOptions::default()
        },
    );
    let picture = svg(&sb, &root, &["-f", "mesh.yml"]);
    assert!(
        picture.len() < MESH_1000_MAX_BYTES,
        "{} bytes",
        picture.len()
    );
    let titles = boxes(&picture);
    // The base, its packages, one block of every service, the policy and the
    // chart.
    assert_eq!(titles.len(), 5, "{titles:?}");
    assert!(titles.iter().any(|t| t.starts_with("1000 services")));
    for i in [0, 499, 999] {
        assert!(picture.contains(&format!(">{}</text>", service_name(i))));
    }
    let kinds = [
        "base",
        "packages",
        "copy",
        "layer",
        "image",
        "sign",
        "sbom",
        "provenance",
        "policy",
        "chart",
    ];
    renders(&picture, "graph-1000-services", &colours(&kinds));
}

#[test]
fn a_graph_whose_reader_goes_away_ends_quietly() {
    // `scone graph | head -1`: the reader has gone before scone writes.
    let mut graph = std::process::Command::new(assert_cmd::cargo::cargo_bin("scone"));
    graph
        .args(["graph", "-f"])
        .arg(support::fixtures().join("multi/mesh.yml"));
    support::assert_ends_quietly_without_reader(graph);
}
