//! `scone graph --format dot|mermaid|json|svg`: the planned step DAG, printed
//! before anything is built; `svg` draws it (`scone::draw::graph`).

use scone::engine::StepId;
use scone::plan::{self, Settings};
use std::path::PathBuf;

use super::args::{GraphArgs, GraphFormat};
use super::build::{cache_dir, load_workspace, selected};

/// Runs `scone graph`.
pub fn run(args: &GraphArgs) -> anyhow::Result<i32> {
    let ws = load_workspace(&args.common)?;
    let only = selected(&ws, &args.common)?;
    let settings = Settings {
        target_dir: ws.target_dir(args.common.target_dir.as_deref()),
        source_date_epoch: 0,
        compression: scone::oci::tar::Compression::Gzip,
        debug: true,
        signing_key: PathBuf::from("signing-key.pem"),
        provenance_key: PathBuf::from("provenance-key.pem"),
        cache_dir: cache_dir(),
        offline: true,
        insecure_registries: Vec::new(),
        docker_host: None,
        pinned_bases: Default::default(),
        known_sessions: Default::default(),
        only,
        helm_templates: None,
        output_yaml: false,
        apply: None,
    };
    let planned = plan::plan(&ws, &settings)?;
    let ids: Vec<String> = planned.ids().map(|id| id.to_string()).collect();
    let edges: Vec<(String, String)> = planned
        .edges()
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    match args.format {
        GraphFormat::Dot => {
            println!("digraph scone {{");
            println!("  rankdir=LR;");
            for id in &ids {
                println!("  {id:?};");
            }
            for (a, b) in &edges {
                println!("  {a:?} -> {b:?};");
            }
            println!("}}");
        }
        GraphFormat::Mermaid => {
            println!("graph LR");
            let index: std::collections::HashMap<&str, usize> = ids
                .iter()
                .enumerate()
                .map(|(i, id)| (id.as_str(), i))
                .collect();
            let key = |id: &str| format!("n{}", index.get(id).copied().unwrap_or(0));
            for id in &ids {
                println!("  {}[\"{}\"]", key(id), mermaid_label(id));
            }
            for (a, b) in &edges {
                println!("  {} --> {}", key(a), key(b));
            }
        }
        GraphFormat::Svg => {
            let ids: Vec<StepId> = planned.ids().cloned().collect();
            let options = scone::draw::graph::Options {
                // One service alone (hello-world, `-p`) is shown step by step.
                expand: args.expand || services(&ids) <= 1,
            };
            print!(
                "{}",
                scone::draw::graph::svg(&ids, &planned.edges(), options)
            );
        }
        GraphFormat::Json => {
            let nodes: Vec<serde_json::Value> = planned
                .ids()
                .map(|id| serde_json::json!({"id": id.to_string(), "step": id.kind, "unit": id.unit}))
                .collect();
            let edges: Vec<serde_json::Value> = edges
                .iter()
                .map(|(a, b)| serde_json::json!({"from": a, "to": b}))
                .collect();
            println!("{}", serde_json::json!({"nodes": nodes, "edges": edges}));
        }
    }
    Ok(0)
}

/// How many services `ids` build steps of.
fn services(ids: &[StepId]) -> usize {
    let mut units: Vec<&str> = ids
        .iter()
        .filter(|id| scone::draw::kinds::of_a_service(&id.kind))
        .map(|id| id.unit.as_str())
        .collect();
    units.sort();
    units.dedup();
    units.len()
}

/// `text` as a quoted Mermaid label: `"`, `#`, `<`, `>` and `&` as Mermaid's
/// entity codes (a `dir:` base's path may hold any of them; a raw `"` ended
/// the label, and the diagram did not parse).
fn mermaid_label(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '#' => out.push_str("#35;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '&' => out.push_str("#amp;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_mermaid_label_holds_no_quote_or_markup() {
        assert_eq!(
            super::mermaid_label(r#"base:dir:r<script>alert("x&y")</script>#1"#),
            "base:dir:r#lt;script#gt;alert(#quot;x#amp;y#quot;)#lt;/script#gt;#35;1"
        );
        assert_eq!(super::mermaid_label("chart:multi"), "chart:multi");
    }
}
