//! `docs/cli.md` agrees with `--help`: its command reference is what the
//! hidden `scone cli-reference` prints from the clap definitions
//! (`scripts/cli-reference.sh` writes it into the page).

mod support;

#[test]
fn docs_cli_md_is_generated_from_the_clap_definitions() {
    let out = support::scone()
        .arg("cli-reference")
        .output()
        .expect("scone runs");
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).expect("utf-8");
    let page =
        std::fs::read_to_string(support::project_root().join("docs/cli.md")).expect("docs/cli.md");
    let begin = page
        .find("<!-- BEGIN generated")
        .expect("docs/cli.md has a BEGIN generated line");
    let end_marker = "<!-- END generated -->\n";
    let end = page[begin..]
        .find(end_marker)
        .map(|i| begin + i + end_marker.len())
        .expect("docs/cli.md has an END generated line");
    assert!(
        page[begin..end] == generated,
        "docs/cli.md differs from `scone cli-reference`: run scripts/cli-reference.sh"
    );
    // It documents what --help shows, e.g. graph's --format and no -j on check.
    assert!(generated.contains("### `scone graph`"), "{generated}");
    assert!(
        generated.contains("`--format <dot\\|mermaid\\|json\\|svg>`"),
        "{generated}"
    );
    let check = &generated[generated.find("### `scone check`").unwrap()..];
    let check = &check[..check[1..].find("\n### ").unwrap_or(check.len())];
    assert!(!check.contains("--jobs"), "{check}");
}
