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

/// `scone CMD -p NAME` in `dir`: exit code and stderr.
fn with_p(sb: &support::Sandbox, dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let out = sb.scone(dir).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `-p NAME` is a mesh service name or a build.name, and means one service
/// to every command: a mesh service named like another service's build.name
/// (mesh service `multi_c` running b's image, `multi_c` being c's
/// build.name) is refused at load — `check` too, at the mesh service's name,
/// naming the build.name's place — where `graph` and `clean` took the build
/// and `run` the mesh service.
#[test]
fn a_mesh_service_named_like_another_services_build_is_refused_by_every_command() {
    let sb = support::Sandbox::new();
    let dir = sb.multi("registry.example.com");
    let mesh = dir.join("mesh.yml");
    let text = std::fs::read_to_string(&mesh).unwrap();
    std::fs::write(&mesh, text.replace("  - name: b\n", "  - name: multi_c\n")).unwrap();
    let line = 1 + std::fs::read_to_string(&mesh)
        .unwrap()
        .lines()
        .position(|l| l == "  - name: multi_c")
        .unwrap();
    let at = format!("error: mesh.yml:{line}:11: mesh service `multi_c` runs the image of b/service.yml (build.name `multi_b`), but `multi_c` is the build.name of another service, c/service.yml:8:9");
    for args in [
        &["check"][..],
        &["graph", "-p", "multi_c"],
        &["clean", "-p", "multi_c"],
        &["run", "-p", "multi_c", "--native"],
    ] {
        let (code, stderr) = with_p(&sb, &dir, args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(&at), "{args:?}: {stderr}");
        assert!(stderr.contains("[duplicate-service]"), "{args:?}: {stderr}");
        assert!(
            stderr.contains("help: a name is one service for -p: name the mesh service after the build it runs (`multi_b`)"),
            "{args:?}: {stderr}"
        );
    }
}

/// A mesh service name two meshes give different services is refused by
/// `-p` with the build.names to give instead, which are unique; a
/// build.name selects its service.
#[test]
fn a_p_name_two_meshes_give_different_services_is_refused_with_their_build_names() {
    let sb = support::Sandbox::new();
    let dir = sb.multi("registry.example.com");
    let text = std::fs::read_to_string(dir.join("mesh.yml")).unwrap();
    let services = text.find("\nservices:").unwrap() + 1;
    let other = text[..services].replace("namespace: multi", "namespace: other")
        + "services:\n  - name: a\n    image: registry.example.com/multi/c:1\n";
    std::fs::write(dir.join("other.yml"), other).unwrap();
    let (code, stderr) = with_p(
        &sb,
        &dir,
        &["graph", "-f", "mesh.yml", "-f", "other.yml", "-p", "a"],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("-p a: `a` is a mesh service of 2 meshes that run different services"),
        "{stderr}"
    );
    assert!(
        stderr.contains("help: name the service by its build.name: -p multi_a or -p multi_c"),
        "{stderr}"
    );
    let out = sb
        .scone(&dir)
        .args([
            "graph",
            "-f",
            "mesh.yml",
            "-f",
            "other.yml",
            "-p",
            "multi_c",
        ])
        .args(["--format", "json"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("copy:multi_c") && !text.contains("copy:multi_a"),
        "{text}"
    );
}
