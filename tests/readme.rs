//! The README works as written on a fresh machine: its quick-start files are
//! its fenced blocks marked `file=NAME`, written out verbatim, and the `scone`
//! commands of its `sh quick-start` block run on them, in order, through the
//! binary. Its set-up block is exactly the two scripts and the line that gets
//! `scone`; `.ci/run` calls the test script; `scripts/example.sh` shows cargo's
//! progress. A missing default base says how to make it.

mod support;

use std::path::Path;
use support::Sandbox;

/// A fenced block of the README: its info string and its text.
struct Block {
    info: String,
    text: String,
}

fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut current: Option<Block> = None;
    for line in markdown.split_inclusive('\n') {
        let trimmed = line.trim_end();
        match &mut current {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    current = Some(Block {
                        info: info.trim().to_string(),
                        text: String::new(),
                    });
                }
            }
            Some(block) => {
                if trimmed == "```" {
                    out.extend(current.take());
                } else {
                    block.text.push_str(line);
                }
            }
        }
    }
    out
}

fn readme() -> String {
    std::fs::read_to_string(support::project_root().join("README.md")).expect("README.md")
}

/// The words of a shell line, without its comment.
fn words(line: &str) -> Vec<String> {
    let code = line.split(" #").next().unwrap_or(line);
    code.split_whitespace().map(String::from).collect()
}

#[test]
fn the_quick_start_works_exactly_as_written() {
    let readme = readme();
    let blocks = blocks(&readme);
    let sb = Sandbox::new();
    let dir = sb.path().join("hello");
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    for block in &blocks {
        if let Some(name) = block
            .info
            .split_whitespace()
            .find_map(|w| w.strip_prefix("file="))
        {
            std::fs::write(dir.join(name), &block.text).unwrap();
            files.push(name.to_string());
        }
    }
    files.sort();
    assert_eq!(files, ["mesh.yml", "print_env.py", "service.yml"]);
    let commands: Vec<Vec<String>> = blocks
        .iter()
        .find(|b| b.info == "sh quick-start")
        .expect("a ```sh quick-start block")
        .text
        .lines()
        .map(words)
        .filter(|w| !w.is_empty())
        .collect();
    assert!(commands.len() >= 3, "{commands:?}");
    let mut ran = Vec::new();
    for command in &commands {
        assert_eq!(command[0], "scone", "only scone commands: {command:?}");
        let out = sb.scone(&dir).args(&command[1..]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{command:?} failed:\n{stderr}");
        ran.push(command[1].clone());
        if command[1] == "run" {
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                stdout.contains("Hello 'myself' - thanks for passing along the API_PASSWORD"),
                "{stdout}"
            );
        }
    }
    for needed in ["build", "apply", "run"] {
        assert!(ran.iter().any(|r| r == needed), "no `scone {needed}`");
    }
    assert!(dir.join("target/helm/Chart.yaml").is_file());
}

#[test]
fn the_set_up_is_two_scripts_and_the_line_that_gets_scone() {
    let readme = readme();
    let setup = &readme[readme
        .find("## Set up on a fresh machine")
        .expect("the set-up section")..];
    let block = blocks(setup).into_iter().next().expect("a set-up block");
    let commands: Vec<Vec<String>> = block.text.lines().map(words).collect();
    assert_eq!(
        commands,
        [
            vec!["scripts/example.sh"],
            vec!["scripts/test.sh"],
            vec!["cargo", "install", "--path", "."]
        ]
    );
    let ci = std::fs::read_to_string(support::project_root().join(".ci/run")).unwrap();
    assert!(
        ci.lines()
            .any(|l| !l.trim_start().starts_with('#') && l.contains("scripts/test.sh")),
        ".ci/run calls scripts/test.sh"
    );
    // What scripts/test.sh installs (through scripts/ci-deps.sh) is what the
    // README says it installs.
    let deps = std::fs::read_to_string(support::project_root().join("scripts/ci-deps.sh")).unwrap();
    let mut packages = Vec::new();
    for line in deps.lines() {
        for array in [
            "APT_PACKAGES=(",
            "APT_PACKAGES_NO_RECOMMENDS=(",
            "ATTEST_PYPI=(",
        ] {
            if let Some(list) = line.strip_prefix(array) {
                let list = list.trim_end_matches(')');
                packages.extend(
                    list.split_whitespace()
                        .map(|p| p.split("==").next().unwrap_or(p)),
                );
            }
        }
    }
    assert!(
        packages.len() >= 10,
        "scripts/ci-deps.sh's packages: {packages:?}"
    );
    for package in packages {
        assert!(
            setup.contains(package),
            "the README does not say that scripts/test.sh installs {package}"
        );
    }
    let example =
        std::fs::read_to_string(support::project_root().join("scripts/example.sh")).unwrap();
    let builds: Vec<&str> = example
        .lines()
        .filter(|l| l.trim_start().starts_with("cargo build"))
        .collect();
    assert!(!builds.is_empty(), "scripts/example.sh builds scone");
    for line in builds {
        assert!(
            !words(line).iter().any(|w| w == "--quiet" || w == "-q"),
            "cargo's progress shows: {line}"
        );
    }
}

/// The README's service manifest when the default base is missing: `check`
/// warns and `build` fails, both saying how to make it and where.
#[test]
fn a_missing_default_base_says_how_to_make_it() {
    let readme = readme();
    let sb = Sandbox::new();
    let dir = sb.path().join("hello");
    std::fs::create_dir_all(&dir).unwrap();
    for block in blocks(&readme) {
        if let Some(name) = block
            .info
            .split_whitespace()
            .find_map(|w| w.strip_prefix("file="))
        {
            std::fs::write(dir.join(name), &block.text).unwrap();
        }
    }
    let missing = sb.path().join("no-python");
    let run = |args: &[&str]| {
        let out = sb
            .scone(&dir)
            .env("SCONE_PYTHON_ROOTFS", &missing)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let says_how = |stderr: &str| {
        stderr.contains(&format!("scripts/python-rootfs.sh {}", missing.display()))
            && stderr.contains("SCONE_PYTHON_ROOTFS")
    };
    let (code, stderr) = run(&["check", "-f", "mesh.yml"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("warning: service.yml:"), "{stderr}");
    assert!(says_how(&stderr), "{stderr}");
    let (code, stderr) = run(&["build", "-f", "mesh.yml"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(says_how(&stderr), "{stderr}");
    assert!(!dir.join("target/images").exists(), "nothing was built");
}

/// The mistake the README once made: `build.from` naming a folder that is
/// not there is an error of the manifest, at its line, with a hint.
#[test]
fn a_missing_local_base_is_a_manifest_error() {
    let sb = Sandbox::new();
    let dir = sb.hello_world("app");
    let service = dir.join("service.yml");
    let text = std::fs::read_to_string(&service).unwrap();
    let text = text.replace(
        "  kind: python\n",
        "  kind: python\n  from: dir:rootfs/python3\n",
    );
    std::fs::write(&service, &text).unwrap();
    let line = text
        .lines()
        .position(|l| l.contains("from: dir:"))
        .map(|i| i + 1)
        .unwrap();
    for file in ["service.yml", "mesh.yml"] {
        let out = sb.scone(&dir).args(["check", "-f", file]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{file}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "error: service.yml:{line}:9: build.from `dir:rootfs/python3`"
            )),
            "{file}: {stderr}"
        );
        assert!(stderr.contains("help: "), "{stderr}");
        assert!(stderr.contains("scripts/python-rootfs.sh"), "{stderr}");
    }
    assert!(!Path::new(&dir.join("target")).exists());
}
