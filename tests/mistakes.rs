//! Every manifest mistake is shown where it is, whichever way the manifest is
//! read: given alone (`check -f service.yml`) or found through a Meshfile by
//! its image (`check -f mesh.yml`, the README's way). Each test writes a good
//! mesh and service manifest, makes one mistake, and expects exit 2 with the
//! mistake's real `file:line:col`, its kind and a hint, through the binary
//! (`check`, and `build` for an entry binary missing from the image).

mod support;

use std::path::Path;
use support::Sandbox;

const SERVICE: &str = "\
apiVersion: scone/5.8
kind: genImage
environment:
  local:
    - name: API_PASSWORD
      value: \"$$SCONE::password\"
  global:
    - name: API_USER
secrets:
  global:
    - name: password
      kind: ascii
      size: 10
build:
  name: hello
  kind: python
  to: registry.example.com/team/hello:1
  pwd: /python
  command: python3 print_env.py
  copy:
    - print_env.py
";

const MESH: &str = "\
apiVersion: scone/5.8
kind: mesh
cas:
  - name: cas
    cas_url: cas.example.com
policy:
  namespace: hello
env:
  - name: API_USER
    value: myself
services:
  - name: hello
    image: registry.example.com/team/hello:1
";

/// A folder with the good mesh and service manifest, `service` replacing the
/// service manifest's text (as bytes: some mistakes are not UTF-8).
fn workspace(sb: &Sandbox, service: &[u8], mesh: &str) -> std::path::PathBuf {
    let dir = sb.path().join("app");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("service.yml"), service).unwrap();
    std::fs::write(dir.join("mesh.yml"), mesh).unwrap();
    std::fs::write(dir.join("print_env.py"), "print('hi')\n").unwrap();
    dir
}

/// `scone check -f FILE` in `dir`: exit code and stderr.
fn check(sb: &Sandbox, dir: &Path, file: &str) -> (Option<i32>, String) {
    let out = sb
        .scone(dir)
        .args(["check", "-f", file])
        .output()
        .expect("scone runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Exit 2 and an `error: AT: … [KIND]` line, then (after the source line
/// and its caret, when shown) a `help:` line.
fn assert_shown(got: &(Option<i32>, String), at: &str, kind: &str) {
    let (code, stderr) = got;
    assert_eq!(*code, Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.starts_with(&format!("error: {at}: ")) && l.ends_with(&format!("[{kind}]")))
        .unwrap_or_else(|| panic!("no `error: {at}: … [{kind}]` in:\n{stderr}"));
    let help = lines[i + 1..]
        .iter()
        .take_while(|l| !l.starts_with("error: ") && !l.starts_with("warning: "))
        .find(|l| l.trim_start().starts_with("help: "))
        .copied()
        .unwrap_or_default();
    assert!(
        help.trim().len() > "help: ".len(),
        "the error at {at} has no hint:\n{stderr}"
    );
}

/// The service manifest with `from` replaced by `to` (exactly once).
fn service_with(from: &str, to: &str) -> String {
    assert_eq!(SERVICE.matches(from).count(), 1, "{from}");
    SERVICE.replace(from, to)
}

/// Checks the broken service manifest both alone and through the mesh.
fn both_ways(service: &[u8], at: &str, kind: &str) {
    let sb = Sandbox::new();
    let dir = workspace(&sb, service, MESH);
    assert_shown(&check(&sb, &dir, "service.yml"), at, kind);
    assert_shown(&check(&sb, &dir, "mesh.yml"), at, kind);
}

#[test]
fn the_good_manifests_pass_both_ways() {
    let sb = Sandbox::new();
    let dir = workspace(&sb, SERVICE.as_bytes(), MESH);
    for file in ["service.yml", "mesh.yml"] {
        let (code, stderr) = check(&sb, &dir, file);
        assert_eq!(code, Some(0), "{file}: {stderr}");
    }
}

#[test]
fn a_misspelt_kind_is_shown() {
    let service = service_with("kind: genImage", "kind: genImag");
    both_ways(service.as_bytes(), "service.yml:2:7", "kind");
}

#[test]
fn a_misspelt_secret_kind_is_shown() {
    let service = service_with("kind: ascii", "kind: asci");
    both_ways(service.as_bytes(), "service.yml:12:13", "invalid-value");
    let sb = Sandbox::new();
    let dir = workspace(&sb, service.as_bytes(), MESH);
    let (_, stderr) = check(&sb, &dir, "service.yml");
    assert!(stderr.contains("did you mean `ascii`?"), "{stderr}");
    // A kind far from every one CAS knows is kept as written, for CAS.
    let service = service_with("kind: ascii", "kind: my-own-kind");
    let dir = workspace(&sb, service.as_bytes(), MESH);
    let (code, stderr) = check(&sb, &dir, "service.yml");
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn an_undefined_template_variable_is_shown() {
    let service = service_with("python3 print_env.py", "python3 {{SCRIPT}}");
    both_ways(service.as_bytes(), "service.yml:19:20", "template");
}

#[test]
fn a_tab_is_shown() {
    let service = service_with("  kind: python", "\tkind: python");
    both_ways(service.as_bytes(), "service.yml:16:1", "yaml");
}

#[test]
fn an_alias_bomb_is_shown() {
    let mut bomb =
        String::from("x-laughs:\n  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    let mut prev = 'a';
    for n in "bcdefghij".chars() {
        let refs = vec![format!("*{prev}"); 9].join(", ");
        bomb.push_str(&format!("  {n}: &{n} [{refs}]\n"));
        prev = n;
    }
    let service = format!("{SERVICE}{bomb}");
    both_ways(service.as_bytes(), "service.yml:23:9", "yaml");
}

#[test]
fn a_duplicate_key_is_shown() {
    let service = service_with("  pwd: /python\n", "  pwd: /python\n  name: hello2\n");
    both_ways(service.as_bytes(), "service.yml:19:3", "yaml");
}

/// A list written as one value (`copy: print_env.py`): the parser's
/// "expected sequence start" said in words, with the fix.
#[test]
fn a_list_written_as_one_value_is_shown_with_how_to_write_a_list() {
    let service = service_with("  copy:\n    - print_env.py\n", "  copy: print_env.py\n");
    both_ways(service.as_bytes(), "service.yml:20:9", "type");
    let sb = Sandbox::new();
    let dir = workspace(&sb, service.as_bytes(), MESH);
    let (_, stderr) = check(&sb, &dir, "service.yml");
    assert!(
        stderr.contains("expected a list") && stderr.contains("help: write a list"),
        "{stderr}"
    );
    assert!(!stderr.contains("sequence start"), "{stderr}");
}

/// `manifest:` naming a folder: it exists, so "does not exist" misled; the
/// hint names the manifest in it.
#[test]
fn a_manifest_link_to_a_folder_says_so_and_names_the_manifest_in_it() {
    let sb = Sandbox::new();
    let mesh = MESH.replace(
        "    image: registry.example.com/team/hello:1\n",
        "    image: registry.example.com/team/hello:1\n    manifest: sub\n",
    );
    let dir = workspace(&sb, SERVICE.as_bytes(), &mesh);
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::fs::rename(dir.join("service.yml"), dir.join("sub/service.yml")).unwrap();
    let got = check(&sb, &dir, "mesh.yml");
    assert_shown(&got, "mesh.yml:14:15", "special-file");
    assert!(
        got.1.contains("service manifest `sub` is a folder")
            && got.1.contains("`manifest: sub/service.yml`")
            && !got.1.contains("does not exist"),
        "{}",
        got.1
    );
}

/// A folder where the default Meshfile would be: the discovery skips it,
/// and the error says what is there rather than only that nothing was found.
#[test]
fn a_folder_named_like_the_meshfile_is_said_to_be_one() {
    let sb = Sandbox::new();
    let dir = workspace(&sb, SERVICE.as_bytes(), MESH);
    std::fs::remove_file(dir.join("mesh.yml")).unwrap();
    std::fs::create_dir(dir.join("mesh.yml")).unwrap();
    let out = sb.scone(&dir).arg("check").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no manifest to load")
            && stderr.contains("help: `mesh.yml` here is a folder, not a Meshfile"),
        "{stderr}"
    );
}

/// A `kind` that is no word, in a Meshfile with a template (whose header is
/// read by a line scan): shown at its line and column, as any other kind.
#[test]
fn a_kind_that_is_a_list_in_a_templated_meshfile_is_shown_where_it_is() {
    let sb = Sandbox::new();
    let mesh = format!(
        "{}# exported as {{{{cas_cas_cas_url}}}}\n",
        MESH.replace("kind: mesh", "kind: [mesh]")
    );
    let dir = workspace(&sb, SERVICE.as_bytes(), &mesh);
    assert_shown(&check(&sb, &dir, "mesh.yml"), "mesh.yml:2:7", "kind");
}

/// `apply -p` of a mesh service: the mesh's session holds every service's
/// measurements, so such an apply built one service and uploaded nothing,
/// and its plan said "No changes". A usage error now, for `--plan` too; a
/// service used alone (no mesh, no session) still takes `-p`.
#[test]
fn apply_of_one_service_of_a_mesh_is_a_usage_error() {
    let sb = Sandbox::new();
    let dir = workspace(&sb, SERVICE.as_bytes(), MESH);
    for plan in [&[][..], &["--plan"][..]] {
        let out = sb
            .scone(&dir)
            .args(["apply", "-f", "mesh.yml", "-p", "hello"])
            .args(plan)
            .output()
            .expect("scone runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{plan:?}: {stderr}");
        assert!(
            stderr.contains("apply -p: `hello` is a service of the mesh `hello`")
                && stderr.contains("help: run `scone apply`"),
            "{plan:?}: {stderr}"
        );
        assert!(!dir.join("target/policy").exists(), "{plan:?}: built");
    }
    let out = sb
        .scone(&dir)
        .args(["apply", "-f", "service.yml", "-p", "hello", "--plan"])
        .output()
        .expect("scone runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "a service used alone: {stderr}");
}

#[test]
fn bad_utf8_is_shown() {
    let mut service = service_with("secrets:\n", "# caf\u{e9}\nsecrets:\n").into_bytes();
    let at = service
        .windows(2)
        .position(|w| w == "\u{e9}".as_bytes())
        .unwrap();
    service.splice(at..at + 2, [0xe9]);
    both_ways(&service, "service.yml:9:6", "io");
}

#[test]
fn a_version_in_a_service_manifest_is_shown() {
    let service = format!("{SERVICE}version: 1.0\n");
    both_ways(service.as_bytes(), "service.yml:22:1", "unknown-field");
}

#[test]
fn a_non_semver_mesh_version_is_shown() {
    let sb = Sandbox::new();
    let dir = workspace(
        &sb,
        SERVICE.as_bytes(),
        &format!("{MESH}version: \"1.0\"\n"),
    );
    assert_shown(
        &check(&sb, &dir, "mesh.yml"),
        "mesh.yml:14:10",
        "invalid-value",
    );
}

#[test]
fn a_heap_that_is_no_size_is_shown() {
    let service = service_with(
        "  global:\n    - name: API_USER\n",
        "    - name: SCONE_HEAP\n      value: lots\n  global:\n    - name: API_USER\n",
    );
    both_ways(service.as_bytes(), "service.yml:8:14", "invalid-value");
}

#[test]
fn copying_the_manifest_folder_itself_is_shown() {
    let service = service_with("    - print_env.py\n", "    - .\n");
    both_ways(service.as_bytes(), "service.yml:21:7", "invalid-value");
}

#[test]
fn a_mesh_without_cas_is_shown() {
    let sb = Sandbox::new();
    let mesh = MESH.replace("cas:\n  - name: cas\n    cas_url: cas.example.com\n", "");
    let dir = workspace(&sb, SERVICE.as_bytes(), &mesh);
    assert_shown(
        &check(&sb, &dir, "mesh.yml"),
        "mesh.yml:1:1",
        "missing-field",
    );
}

/// A list left empty (`cas:` with nothing under it, `env:`, `copy:`) reads as
/// the empty list (probe 53b, confusing message 8): the clear message of what
/// is missing, as for `cas: []`, not `expected a list [type]`.
#[test]
fn an_empty_list_field_is_read_as_an_empty_list() {
    let sb = Sandbox::new();
    let cas = "cas:\n  - name: cas\n    cas_url: cas.example.com\n";
    for empty in ["cas:\n", "cas: ~\n", "cas: []\n"] {
        let dir = workspace(&sb, SERVICE.as_bytes(), &MESH.replace(cas, empty));
        let got = check(&sb, &dir, "mesh.yml");
        assert_shown(&got, "mesh.yml:1:1", "missing-field");
        assert!(
            got.1.contains("the mesh defines no CAS"),
            "{empty}: {}",
            got.1
        );
        assert!(!got.1.contains("[type]"), "{empty}: {}", got.1);
    }
    // `env:` left empty: no value for the service's global, said as such.
    let env = "env:\n  - name: API_USER\n    value: myself\n";
    let dir = workspace(&sb, SERVICE.as_bytes(), &MESH.replace(env, "env:\n"));
    let got = check(&sb, &dir, "mesh.yml");
    assert_shown(&got, "service.yml:8:13", "undefined-global");
    assert!(!got.1.contains("[type]"), "{}", got.1);
    // Lists of a service manifest too: `copy:` with nothing under it is none.
    let service = service_with("  copy:\n    - print_env.py\n", "  copy:\n");
    let dir = workspace(&sb, service.as_bytes(), MESH);
    let got = check(&sb, &dir, "service.yml");
    assert!(!got.1.contains("[type]"), "{}", got.1);
}

#[test]
fn an_unlinked_image_names_the_searched_folder() {
    let sb = Sandbox::new();
    let mesh = MESH.replace("team/hello:1", "team/other:1");
    let dir = workspace(&sb, SERVICE.as_bytes(), &mesh);
    let (code, stderr) = check(&sb, &dir, "mesh.yml");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("[unlinked-service]"), "{stderr}");
    assert!(
        !stderr.contains(" under \n") && !stderr.contains(" under  "),
        "{stderr}"
    );
    assert!(stderr.contains("under `.`"), "{stderr}");
}

/// A service manifest that does not read leaves its mesh service unlinked:
/// the manifest's own error, the cause, is shown first, and the unlinked
/// service after it, pointing back at it.
#[test]
fn a_manifest_that_does_not_read_is_shown_before_the_service_it_leaves_unlinked() {
    let sb = Sandbox::new();
    let broken = SERVICE.replace("  pwd: /python\n", "  pwd: /python\n   bad: [x\n");
    let dir = workspace(&sb, broken.as_bytes(), MESH);
    let (code, stderr) = check(&sb, &dir, "mesh.yml");
    assert_eq!(code, Some(2), "{stderr}");
    let yaml = stderr.find("[yaml]").expect(&stderr);
    let unlinked = stderr.find("[unlinked-service]").expect(&stderr);
    assert!(yaml < unlinked, "the cause comes first:\n{stderr}");
    assert!(
        stderr.contains("cannot be read: fix the error(s) reported there"),
        "{stderr}"
    );
    assert!(stderr.starts_with("error: service.yml:"), "{stderr}");
}

/// Raw output (`{{{x}}}`, `{{&x}}`) in a service manifest found by its image
/// (probe 53b #4): discovery reports its `template` error at the manifest's own
/// place and counts it among the files that could not be read, as for any
/// other manifest that does not render, instead of skipping it and telling the
/// user to fix the Meshfile's `image`.
#[test]
fn raw_output_in_a_discovered_manifest_is_shown_at_its_place() {
    for raw in ["{{{namespace}}}", "{{&namespace}}"] {
        let service = service_with("  pwd: /python", &format!("  pwd: /{raw}"));
        both_ways(service.as_bytes(), "service.yml:18:9", "template");
        let sb = Sandbox::new();
        let dir = workspace(&sb, service.as_bytes(), MESH);
        let (code, stderr) = check(&sb, &dir, "mesh.yml");
        assert_eq!(code, Some(2), "{stderr}");
        assert!(
            stderr.starts_with("error: service.yml:18:9: raw output"),
            "{raw}: {stderr}"
        );
        assert!(
            stderr.contains("1 file(s) under `.` that could build it cannot be read"),
            "{raw}: {stderr}"
        );
        assert!(!stderr.contains("fix `image`"), "{raw}: {stderr}");
    }
}

/// A mesh whose generated secrets pass the session's bound (1048576 in all,
/// probe 53b #5) is refused by `check` (and the load of `build`) at the secret
/// that crosses it, naming the mesh and the sum, instead of failing late at the
/// `policy` step (exit 1, no place). Counted as the policy counts: a manifest
/// linked by two services once; alone (no mesh, no session) it passes.
#[test]
fn generated_secrets_past_the_session_bound_are_shown_at_the_secret_crossing_it() {
    let big = |n: usize| -> String {
        (0..n)
            .map(|i| format!("    - {{ name: s{i}, kind: binary, size: 65536 }}\n"))
            .collect()
    };
    let with = |n: usize| service_with("      size: 10\n", &format!("      size: 10\n{}", big(n)));
    // 10 + 16 × 65536 = 1048586: the 16th (line 14 + 15) crosses the bound.
    let sb = Sandbox::new();
    let dir = workspace(&sb, with(16).as_bytes(), MESH);
    let got = check(&sb, &dir, "mesh.yml");
    assert_shown(&got, "service.yml:29:40", "invalid-value");
    assert!(
        got.1.contains("mesh `hello` declares 1048586 characters or bytes of generated secrets in all, more than the maximum of 1048576")
            && got.1.contains("secret `s15`"),
        "{}",
        got.1
    );
    let out = sb
        .scone(&dir)
        .args(["build", "-f", "mesh.yml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("error: service.yml:29:40: "), "{stderr}");
    assert!(!dir.join("target/policy").exists(), "{stderr}");
    let (code, stderr) = check(&sb, &dir, "service.yml");
    assert_eq!(code, Some(0), "alone, no session: {stderr}");
    // 10 + 15 × 65536 = 983050, once though two services run the manifest.
    let sb = Sandbox::new();
    let twice = format!("{MESH}  - name: hello2\n    image: registry.example.com/team/hello:1\n");
    let dir = workspace(&sb, with(15).as_bytes(), &twice);
    let (code, stderr) = check(&sb, &dir, "mesh.yml");
    assert_eq!(code, Some(0), "{stderr}");
}

/// A second `cas` entry with another name and no `alias` plays no role (only
/// the first entry without `alias` gets the default alias): `check` warns at
/// its name, with a hint, and still passes.
#[test]
fn a_second_cas_without_alias_is_warned() {
    let sb = Sandbox::new();
    let mesh = MESH.replace(
        "    cas_url: cas.example.com\n",
        "    cas_url: cas.example.com\n  - name: backup\n    cas_url: backup.example.com\n",
    );
    let dir = workspace(&sb, SERVICE.as_bytes(), &mesh);
    let (code, stderr) = check(&sb, &dir, "mesh.yml");
    assert_eq!(code, Some(0), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    let i = lines
        .iter()
        .position(|l| {
            l.starts_with("warning: mesh.yml:6:11: ")
                && l.contains("`backup`")
                && l.ends_with("[cas-role]")
        })
        .unwrap_or_else(|| panic!("no `warning: mesh.yml:6:11: … [cas-role]` in:\n{stderr}"));
    let help = lines[i + 1..]
        .iter()
        .take_while(|l| !l.starts_with("error: ") && !l.starts_with("warning: "))
        .find(|l| l.trim_start().starts_with("help: "))
        .unwrap_or_else(|| panic!("the warning has no hint:\n{stderr}"));
    assert!(help.contains("alias"), "{help}");
    // With an alias it plays a role, and nothing is said.
    let mesh = mesh.replace(
        "    cas_url: backup.example.com\n",
        "    cas_url: backup.example.com\n    alias: [image]\n",
    );
    let dir = workspace(&sb, SERVICE.as_bytes(), &mesh);
    let (code, stderr) = check(&sb, &dir, "mesh.yml");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("[cas-role]"), "{stderr}");
}

/// The good workspace with a `dir:` base in it (`base/`, holding only
/// `/usr/bin/python3`) and `service` made from [`SERVICE`] by `edits`.
fn with_dir_base(sb: &Sandbox, edits: &[(&str, &str)]) -> std::path::PathBuf {
    let mut service = service_with("  kind: python\n", "  kind: python\n  from: dir:base\n");
    for (from, to) in edits {
        assert_eq!(service.matches(from).count(), 1, "{from}");
        service = service.replace(from, to);
    }
    let dir = workspace(sb, service.as_bytes(), MESH);
    std::fs::create_dir_all(dir.join("base/usr/bin")).unwrap();
    std::fs::write(dir.join("base/usr/bin/python3"), b"\x7fELF").unwrap();
    dir
}

/// `check` through both ways on a workspace made by [`with_dir_base`].
fn entry_shown(edits: &[(&str, &str)], at: &str) {
    let sb = Sandbox::new();
    let dir = with_dir_base(&sb, edits);
    assert_shown(&check(&sb, &dir, "service.yml"), at, "invalid-value");
    assert_shown(&check(&sb, &dir, "mesh.yml"), at, "invalid-value");
}

#[test]
fn an_entry_binary_in_the_dir_base_or_copied_passes() {
    let sb = Sandbox::new();
    for edits in [
        &[][..],
        &[(
            "  from: dir:base\n",
            "  from: dir:base\n  binary: /usr/bin/python3\n",
        )][..],
        &[("command: python3", "command: ./print_env.py")][..],
    ] {
        let dir = with_dir_base(&sb, edits);
        let (code, stderr) = check(&sb, &dir, "mesh.yml");
        assert_eq!(code, Some(0), "{edits:?}: {stderr}");
    }
}

#[test]
fn a_build_binary_missing_from_the_dir_base_is_shown() {
    entry_shown(
        &[(
            "  from: dir:base\n",
            "  from: dir:base\n  binary: /usr/bin/nope\n",
        )],
        "service.yml:18:11",
    );
}

#[test]
fn a_command_missing_from_the_dir_base_is_shown() {
    entry_shown(
        &[("command: python3", "command: nope")],
        "service.yml:20:12",
    );
}

#[test]
fn a_scratch_command_that_is_not_copied_is_shown() {
    let sb = Sandbox::new();
    let service = service_with("  kind: python\n", "  kind: binary\n")
        .replace("command: python3 print_env.py", "command: /python/server");
    let dir = workspace(&sb, service.as_bytes(), MESH);
    assert_shown(
        &check(&sb, &dir, "service.yml"),
        "service.yml:19:12",
        "invalid-value",
    );
    // The copied file is found.
    let service = service.replace("/python/server", "/python/print_env.py");
    let dir = workspace(&sb, service.as_bytes(), MESH);
    let (code, stderr) = check(&sb, &dir, "service.yml");
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn the_file_an_interpreter_runs_that_is_not_copied_is_shown_with_the_one_that_is() {
    let sb = Sandbox::new();
    let dir = with_dir_base(
        &sb,
        &[(
            "command: python3 print_env.py",
            "command: python3 -u print_envs.py",
        )],
    );
    let got = check(&sb, &dir, "mesh.yml");
    // The caret under the file, not the interpreter.
    assert_shown(&got, "service.yml:20:23", "invalid-value");
    assert!(
        got.1.contains("`print_envs.py`, which `build.command` has python run, is neither among the copied files nor in the base folder"),
        "{}",
        got.1
    );
    assert!(
        got.1
            .contains("help: did you mean `print_env.py`? (copied to /python/print_env.py)"),
        "{}",
        got.1
    );
    // node's file, and java's jar, the same way.
    for (command, runner, file, at) in [
        (
            "node --require ./trace.js server.js",
            "node",
            "server.js",
            "service.yml:20:38",
        ),
        (
            "java -Xmx64m -jar app.jar",
            "java",
            "app.jar",
            "service.yml:20:30",
        ),
        // Quoted, and the file's name also inside an option: the word alone.
        (
            "\"java -Dapp.jar=x -jar app.jar\"",
            "java",
            "app.jar",
            "service.yml:20:35",
        ),
    ] {
        let dir = with_dir_base(
            &sb,
            &[(
                "command: python3 print_env.py",
                &format!("command: {command}"),
            )],
        );
        for bin in ["node", "java"] {
            std::fs::write(dir.join("base/usr/bin").join(bin), b"\x7fELF").unwrap();
        }
        let got = check(&sb, &dir, "mesh.yml");
        assert_shown(&got, at, "invalid-value");
        assert!(
            got.1
                .contains(&format!("`{file}`, which `build.command` has {runner} run")),
            "{}",
            got.1
        );
    }
    // In the base, or copied, or not plainly named: no error.
    for command in [
        "python3 /usr/bin/python3",
        "python3 ./print_env.py",
        "python3 -m http.server",
    ] {
        let dir = with_dir_base(
            &sb,
            &[(
                "command: python3 print_env.py",
                &format!("command: {command}"),
            )],
        );
        let (code, stderr) = check(&sb, &dir, "mesh.yml");
        assert_eq!(code, Some(0), "{command}: {stderr}");
    }
}

#[test]
fn build_refuses_a_missing_entry_binary_before_any_step() {
    let sb = Sandbox::new();
    let dir = with_dir_base(
        &sb,
        &[(
            "  from: dir:base\n",
            "  from: dir:base\n  binary: /usr/bin/nope\n",
        )],
    );
    let out = sb
        .scone(&dir)
        .args(["build", "-f", "service.yml"])
        .output()
        .expect("scone runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("service.yml:18:11") && stderr.contains("[invalid-value]"),
        "{stderr}"
    );
    assert!(!dir.join("target/enclave").exists(), "a step ran: {stderr}");
}

#[test]
fn a_folder_given_as_the_meshfile_is_named_with_the_meshfile_in_it() {
    let sb = Sandbox::new();
    let dir = workspace(&sb, SERVICE.as_bytes(), MESH);
    // `-f .`: the folder is named as given, and the hint names the Meshfile.
    let got = check(&sb, &dir, ".");
    assert_shown(&got, ".", "special-file");
    assert!(got.1.contains("in this folder is `mesh.yml`"), "{}", got.1);
    assert!(!got.1.contains("FIFO"), "{}", got.1);
    let got = check(&sb, sb.path(), "app");
    assert_shown(&got, "app", "special-file");
    assert!(got.1.contains("in this folder is `mesh.yml`"), "{}", got.1);
}

#[test]
fn an_indentation_error_is_not_blamed_on_a_template_in_a_comment() {
    let sb = Sandbox::new();
    // The README's Meshfile has a template in a comment; a service indented
    // one space short breaks the YAML two lines below it.
    let mesh = MESH
        .replace(
            "cas_url: cas.example.com",
            "cas_url: cas.example.com  # exported as {{cas_cas_cas_url}}",
        )
        .replace("  - name: hello\n", " - name: hello\n");
    let dir = workspace(&sb, SERVICE.as_bytes(), &mesh);
    let got = check(&sb, &dir, "mesh.yml");
    assert_eq!(got.0, Some(2), "{}", got.1);
    assert!(got.1.contains("error: mesh.yml:13:"), "{}", got.1);
    assert!(got.1.contains("[yaml]"), "{}", got.1);
    assert!(!got.1.contains("quote values"), "{}", got.1);
}

#[test]
fn a_misspelt_scone_toml_key_is_shown_with_the_key_meant() {
    let sb = Sandbox::new();
    let dir = workspace(&sb, SERVICE.as_bytes(), MESH);
    std::fs::write(dir.join("scone.toml"), "membrs = [\"mesh.yml\"]\n").unwrap();
    let out = sb.scone(&dir).args(["check"]).output().expect("scone runs");
    let got = (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_shown(&got, "scone.toml:1:1", "config");
    assert!(got.1.contains("did you mean `members`?"), "{}", got.1);
    // A key nothing is close to gets the list's place instead.
    std::fs::write(dir.join("scone.toml"), "zzzzzzzz = 1\n").unwrap();
    let out = sb.scone(&dir).args(["check"]).output().expect("scone runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("did you mean"), "{stderr}");
    assert!(stderr.contains("docs/manifests.md"), "{stderr}");
}

#[test]
fn a_signing_mode_that_is_neither_word_is_refused_where_it_is() {
    // `mode = "prod"` was taken for debug: a build meant for production
    // signed debug enclaves and said nothing.
    let sb = Sandbox::new();
    let dir = workspace(&sb, SERVICE.as_bytes(), MESH);
    for (mode, meant) in [("prod", None), ("Production", Some("production"))] {
        std::fs::write(
            dir.join("scone.toml"),
            format!("[signing]\nmode = \"{mode}\"\n"),
        )
        .unwrap();
        for command in ["check", "build"] {
            let out = sb.scone(&dir).arg(command).output().expect("scone runs");
            let got = (
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            );
            assert_shown(&got, "scone.toml:2:8", "config");
            assert!(
                got.1.contains("expected `debug` or `production`"),
                "{}",
                got.1
            );
            if let Some(meant) = meant {
                assert!(
                    got.1.contains(&format!("did you mean `{meant}`?")),
                    "{}",
                    got.1
                );
            }
            assert!(!dir.join("target/enclave").exists(), "{command}: {}", got.1);
        }
    }
}

#[test]
fn a_base_key_that_is_no_build_kind_is_refused_where_it_is() {
    // `[base] pythn = …` was never looked up: the python services kept
    // the default base, and the build said nothing.
    let sb = Sandbox::new();
    let dir = workspace(&sb, SERVICE.as_bytes(), MESH);
    std::fs::write(dir.join("scone.toml"), "[base]\npythn = \"scratch\"\n").unwrap();
    for command in ["check", "build"] {
        let out = sb.scone(&dir).arg(command).output().expect("scone runs");
        let got = (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert_shown(&got, "scone.toml:2:1", "config");
        assert!(
            got.1.contains("no build.kind is named `pythn`"),
            "{}",
            got.1
        );
        assert!(got.1.contains("did you mean `python`?"), "{}", got.1);
        assert!(!dir.join("target/images").exists(), "{command}: {}", got.1);
    }
}

#[test]
fn a_misspelt_tolerated_value_is_warned_of_where_it_is() {
    let sb = Sandbox::new();
    let mesh = MESH.replace(
        "  namespace: hello\n",
        "  namespace: hello\n  tolerate: [outdated-tcb, debug-mod]\n",
    );
    let dir = workspace(&sb, SERVICE.as_bytes(), &mesh);
    let (code, stderr) = check(&sb, &dir, "mesh.yml");
    assert_eq!(code, Some(0), "a warning, not an error: {stderr}");
    assert!(
        stderr.contains("warning: mesh.yml:8:28: `policy.tolerate` item `debug-mod` is no value scone knows [invalid-value]"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `debug-mode`?"), "{stderr}");
}

#[test]
fn a_copy_entry_listed_twice_is_warned_of_where_it_is() {
    let sb = Sandbox::new();
    let service = format!("{SERVICE}    - print_env.py\n");
    let dir = workspace(&sb, service.as_bytes(), MESH);
    let (code, stderr) = check(&sb, &dir, "mesh.yml");
    assert_eq!(code, Some(0), "a warning, not an error: {stderr}");
    assert!(
        stderr.contains(
            "warning: service.yml:22:7: copy path `print_env.py` is listed already (line 21) [invalid-value]"
        ),
        "{stderr}"
    );
}

#[test]
fn run_of_a_misspelt_service_builds_and_applies_nothing() {
    let sb = Sandbox::new();
    let dir = workspace(&sb, SERVICE.as_bytes(), MESH);
    let out = sb
        .scone(&dir)
        .args(["run", "-p", "helo", "-f", "mesh.yml", "--native"])
        .output()
        .expect("scone runs");
    let got = (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_shown(&got, "-p helo", "unknown-service");
    assert!(got.1.contains("did you mean `hello`?"), "{}", got.1);
    // Refused before the build and the apply: no target folder, no session.
    assert!(!dir.join("target").exists(), "{}", got.1);
    assert!(!sb.path().join("cas").exists(), "{}", got.1);
}

#[test]
fn a_remote_cache_of_an_unknown_scheme_is_named_with_where_it_was_given() {
    let sb = Sandbox::new();
    let dir = workspace(&sb, SERVICE.as_bytes(), MESH);
    std::fs::write(dir.join("scone.toml"), "[cache]\nremote = \"ftp://x\"\n").unwrap();
    let cases = [
        (
            vec!["build"],
            "scone.toml [cache] remote: remote cache `ftp://x`",
        ),
        (
            vec!["build", "--remote-cache", "ftp://y"],
            "--remote-cache: remote cache `ftp://y`",
        ),
    ];
    for (args, said) in cases {
        let out = sb.scone(&dir).args(&args).output().expect("scone runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {stderr}");
        assert!(
            stderr.contains(said),
            "{args:?}: want `{said}` in\n{stderr}"
        );
        assert!(stderr.contains("unknown scheme"), "{stderr}");
    }
}

/// `--no-remote-cache` beats `SCONE_REMOTE_CACHE` (a CI job that exports it
/// opts one build out), and an empty `SCONE_REMOTE_CACHE=` or
/// `SCONE_TARGET_DIR=` means "not set" (probe 53b: clap refused both, naming
/// flags the user never gave). Both flags on the command line stay a conflict.
#[test]
fn no_remote_cache_beats_the_environment_and_empty_variables_are_unset() {
    let sb = Sandbox::new();
    let dir = workspace(&sb, SERVICE.as_bytes(), MESH);
    let run = |env: &[(&str, &str)], args: &[&str]| {
        let mut cmd = sb.scone(&dir);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.args(args).output().expect("scone runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(
        &[("SCONE_REMOTE_CACHE", "http://127.0.0.1:1/cache")],
        &["build", "-f", "mesh.yml", "--no-remote-cache"],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        !stderr.contains("remote cache"),
        "the remote was used: {stderr}"
    );
    let (code, stderr) = run(&[("SCONE_REMOTE_CACHE", "")], &["build", "-f", "mesh.yml"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("remote cache"), "{stderr}");
    let (code, stderr) = run(&[("SCONE_TARGET_DIR", "")], &["check", "-f", "mesh.yml"]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = run(
        &[],
        &[
            "build",
            "-f",
            "mesh.yml",
            "--remote-cache",
            "http://127.0.0.1:1/cache",
            "--no-remote-cache",
        ],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--no-remote-cache"), "{stderr}");
}

/// A build directory scone cannot make (here under `/proc`, which takes no
/// new folder even from root) fails with its cause said once, and the hint
/// says where else to build.
#[test]
fn a_build_directory_that_cannot_be_made_names_its_cause_once() {
    let sb = Sandbox::new();
    let dir = workspace(&sb, SERVICE.as_bytes(), MESH);
    let out = sb
        .scone(&dir)
        .args(["build", "--target-dir", "/proc/scone-target"])
        .output()
        .expect("scone runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("cannot use the build directory /proc/scone-target"))
        .expect(&stderr);
    assert_eq!(
        line.matches("No such file or directory").count(),
        1,
        "the cause once: {line}"
    );
    assert!(stderr.contains("--target-dir DIR"), "{stderr}");
}

/// The good workspace with `lines` added to `copy:` (from line 22 on).
fn with_copies(sb: &Sandbox, lines: &[&str]) -> std::path::PathBuf {
    let mut service = SERVICE.to_string();
    for line in lines {
        service.push_str(&format!("    - {line}\n"));
    }
    workspace(sb, service.as_bytes(), MESH)
}

/// A `copy` entry that is a symlink is copied as the link (as one inside a
/// copied folder is), so `check` warns when no entry copies what it points
/// to: in the image it would lead nowhere.
#[test]
fn a_copied_link_whose_target_is_not_copied_is_warned_of_where_it_is() {
    let sb = Sandbox::new();
    let dir = with_copies(&sb, &["data"]);
    std::fs::create_dir_all(dir.join("d2")).unwrap();
    std::fs::write(dir.join("d2/y"), "2\n").unwrap();
    std::os::unix::fs::symlink("d2", dir.join("data")).unwrap();
    for file in ["service.yml", "mesh.yml"] {
        let (code, stderr) = check(&sb, &dir, file);
        assert_eq!(code, Some(0), "a warning, not an error: {stderr}");
        assert!(
            stderr.contains(
                "warning: service.yml:22:7: copy path `data` is a symlink to `d2`, which is not copied: in the image the link leads nowhere [invalid-value]"
            ),
            "{stderr}"
        );
        assert!(stderr.contains("help: copy `d2` too"), "{stderr}");
    }
    // Its target copied too: no warning.
    let dir = with_copies(&sb, &["data", "d2"]);
    let (code, stderr) = check(&sb, &dir, "mesh.yml");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("copy path"), "{stderr}");
}

/// A file named through a `copy` entry that is a symlink would be a file
/// under a link in the image, which no layer holds: `check` refuses it
/// where the layer step would have failed without a line.
#[test]
fn a_copy_path_through_a_copied_link_is_shown() {
    let sb = Sandbox::new();
    let dir = with_copies(&sb, &["data", "d2", "data/y"]);
    std::fs::create_dir_all(dir.join("d2")).unwrap();
    std::fs::write(dir.join("d2/y"), "2\n").unwrap();
    std::os::unix::fs::symlink("d2", dir.join("data")).unwrap();
    for file in ["service.yml", "mesh.yml"] {
        let got = check(&sb, &dir, file);
        assert_shown(&got, "service.yml:24:7", "invalid-value");
        assert!(
            got.1.contains(
                "copy path `data/y` goes through `data`, a symlink copied as a symlink (line 22)"
            ),
            "{}",
            got.1
        );
    }
}

/// A name in a copied folder that is not UTF-8 is refused where the folder
/// is listed, at `check` and `build` alike, the name escaped: the image names
/// files as text, and scone never renames one.
#[test]
fn a_name_that_is_not_utf8_in_a_copied_folder_is_shown_at_check_and_build() {
    use std::os::unix::ffi::OsStrExt;
    let sb = Sandbox::new();
    let dir = with_copies(&sb, &["data"]);
    std::fs::create_dir_all(dir.join("data/sub")).unwrap();
    std::fs::write(dir.join("data/ok.txt"), "ok").unwrap();
    let name = std::ffi::OsStr::from_bytes(b"n-\xff");
    std::fs::write(dir.join("data/sub").join(name), "A").unwrap();
    let said = r"copy folder `data` holds a name that is not UTF-8: sub/n-\xff";
    for file in ["service.yml", "mesh.yml"] {
        let got = check(&sb, &dir, file);
        assert_shown(&got, "service.yml:22:7", "invalid-value");
        assert!(got.1.contains(said), "{}", got.1);
        assert!(got.1.contains("help: rename it"), "{}", got.1);
    }
    let out = sb
        .scone(&dir)
        .args(["build", "-f", "mesh.yml"])
        .output()
        .expect("scone runs");
    let got = (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_shown(&got, "service.yml:22:7", "invalid-value");
    assert!(got.1.contains(said), "{}", got.1);
    assert!(!dir.join("target/images").exists(), "a step ran: {}", got.1);
}

/// A reference CAS could not resolve is refused at its value, whichever
/// way the manifest is read: `$$SCONE::$$` names no secret, and
/// `$$SCONE::password.crt$$` a part of an `ascii` secret, which has none
/// (only a certificate has `.crt`, `.key`, `.chain`). In a Meshfile value
/// too. A certificate's parts pass.
#[test]
fn a_secret_reference_with_no_name_or_a_part_its_kind_has_not_is_shown() {
    for (reference, said, hint) in [
        ("$$SCONE::$$", "names no secret", "write the secret's name"),
        (
            "$$SCONE::password.crt$$",
            "names part `crt` of secret `password`, but a secret of kind `ascii` has no part `crt`",
            "reference the whole secret, `$$SCONE::password$$`",
        ),
    ] {
        let service = service_with("$$SCONE::password", reference);
        let sb = Sandbox::new();
        let dir = workspace(&sb, service.as_bytes(), MESH);
        for file in ["service.yml", "mesh.yml"] {
            let got = check(&sb, &dir, file);
            assert_shown(&got, "service.yml:6:14", "invalid-value");
            assert!(got.1.contains(said), "{reference}: {}", got.1);
            assert!(got.1.contains(hint), "{reference}: {}", got.1);
        }
    }
    // A Meshfile value given to the service.
    let mesh = MESH.replace("value: myself", "value: \"u=$$SCONE::password.key\"");
    let sb = Sandbox::new();
    let dir = workspace(&sb, SERVICE.as_bytes(), &mesh);
    let got = check(&sb, &dir, "mesh.yml");
    assert_shown(&got, "mesh.yml:10:12", "invalid-value");
    assert!(got.1.contains("no part `key`"), "{}", got.1);

    // A certificate's parts resolve; another part is refused, with its parts.
    let cert = "    - name: cert\n      kind: x509\nbuild:";
    let service = service_with("build:", cert).replace(
        "$$SCONE::password\"",
        "$$SCONE::cert.crt$$ $$SCONE::cert.key $$SCONE::cert.chain$$\"",
    );
    let dir = workspace(&sb, service.as_bytes(), MESH);
    let (code, stderr) = check(&sb, &dir, "service.yml");
    assert_eq!(code, Some(0), "{stderr}");
    let service = service.replace("cert.chain", "cert.chian");
    let dir = workspace(&sb, service.as_bytes(), MESH);
    let got = check(&sb, &dir, "service.yml");
    assert_shown(&got, "service.yml:6:14", "invalid-value");
    assert!(
        got.1.contains("did you mean `$$SCONE::cert.chain$$`?"),
        "{}",
        got.1
    );
}

/// Outside a repository, scone reads only the scone.toml of the first file's
/// folder: run one folder too deep, a service's base above that folder is
/// "outside the repository", and the hint names the workspace's scone.toml
/// above that was not read, not the `[paths] allow` of one that is not read.
#[test]
fn outside_a_repository_too_deep_the_hint_names_the_scone_toml_above() {
    use support::monorepo::{generate, Link, MonorepoOptions};
    let sb = Sandbox::new();
    let root = sb.path().join("ws");
    let repo = generate(
        &root,
        MonorepoOptions {
            services: 1,
            link: Link::Members,
            ..MonorepoOptions::default()
        },
    );
    assert!(!root.join(".git").exists(), "no repository");
    let dir = &repo.services[0].2;
    let out = sb
        .scone(dir)
        .args(["check", "-f", "service.yml"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("is outside the repository"), "{err}");
    assert!(
        err.contains("`../../scone.toml` above") && err.contains("git init"),
        "{err}"
    );
    assert!(!err.contains("[paths] allow"), "{err}");
}
