//! Secret values end to end, through the binary: after `scone build` and
//! `scone apply` (local CAS; `--push` to a real registry; the remote cache on
//! nginx WebDAV and in that registry), no secret value is in `target/`,
//! `scone.lock`, the user cache, the remote caches or any output (`-v`,
//! `--explain`, `--message-format json`, `scone cas session`, `scone graph`).
//! The values searched for: the fixed values the service manifest gives (each
//! one it gave over the run), every value the local CAS holds for the session
//! (the generated ones included: the local CAS is the only place they may
//! be), and the signing key. And a manifest `check` refuses names the file
//! and line of its mistake but never the secret value written there: not in
//! the source line it shows (`***` there), nor in the message.

mod support;

use std::path::PathBuf;
use std::process::Output;

use support::registry::Registry;
use support::secrets::{report, Needles};
use support::webdav::Webdav;
use support::{messages, Sandbox};

const SEED_IMAGE: &str = "registry.scontain.com:5050/cicd/python_hello_user:latest";

/// Fixed values the manifest gives `db_password`, one per edit.
const FIXED: [&str; 3] = [
    "fixedDbPw-4711-QzXk",
    "fixedDbPw-4712-RwYm",
    "fixedDbPw-4713-SvTn",
];

/// A multi-line fixed value (byte-exact in CAS).
const FIXED_LINES: &str = "-----BEGIN FIXED TEST VALUE-----\n\
                           firstLine-Zk93pQ-fixed\n\
                           secondLine-Wq81rT-fixed\n\
                           -----END FIXED TEST VALUE-----\n";

/// The hello-world service with fixed-value secrets (one ascii, one
/// multi-line), a generated ascii and a generated binary secret.
fn service_yml(image: &str, fixed: &str) -> String {
    format!(
        r#"apiVersion: scone/5.8
kind: genImage
environment:
  local:
    - name: API_PASSWORD
      value: "$$SCONE::password"
    - name: DB_PASSWORD
      value: "$$SCONE::db_password$$"
    - name: BANNER
      value: "$$SCONE::banner$$"
  global:
    - name: API_USER
secrets:
  global:
    - name: password
      kind: ascii
      size: 10
  local:
    - name: db_password
      kind: ascii
      value: "{fixed}"
    - name: banner
      kind: ascii
      value: |
{lines}    - name: token
      kind: binary
      size: 24
build:
  name: python_hello_user
  kind: python
  to: {image}
  pwd: /python
  command: python3 print_env.py
  copy:
    - print_env.py
"#,
        lines = FIXED_LINES
            .lines()
            .map(|l| format!("        {l}\n"))
            .collect::<String>()
    )
}

struct Project {
    sb: Sandbox,
    dir: PathBuf,
    image: String,
    outputs: Vec<(String, Output)>,
}

impl Project {
    fn new(image: String) -> Project {
        let sb = Sandbox::new();
        let dir = sb.path().join("hw");
        std::fs::create_dir_all(&dir).expect("project folder");
        let src = support::fixtures().join("hello-world");
        let mesh = std::fs::read_to_string(src.join("mesh.yml"))
            .expect("mesh.yml")
            .replace(SEED_IMAGE, &image);
        std::fs::write(dir.join("mesh.yml"), mesh).expect("mesh.yml");
        std::fs::copy(src.join("print_env.py"), dir.join("print_env.py")).expect("program");
        let project = Project {
            sb,
            dir,
            image,
            outputs: Vec::new(),
        };
        project.set_fixed(FIXED[0]);
        project
    }

    fn set_fixed(&self, value: &str) {
        std::fs::write(
            self.dir.join("service.yml"),
            service_yml(&self.image, value),
        )
        .expect("service.yml");
    }

    /// Runs `scone ARGS` in the project; it must succeed. Keeps its output.
    fn scone(&mut self, args: &[&str]) -> &Output {
        let out = self
            .sb
            .scone(&self.dir)
            .args(args)
            .output()
            .expect("runs scone");
        assert!(
            out.status.success(),
            "scone {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        self.outputs.push((args.join(" "), out));
        &self.outputs.last().expect("just pushed").1
    }

    /// The status of the `step` step in the JSON messages of the last run.
    fn status(&self, step: &str) -> String {
        let (_, out) = self.outputs.last().expect("a run");
        let msgs = messages(&out.stdout);
        let m = msgs
            .iter()
            .find(|m| m["step"] == step)
            .unwrap_or_else(|| panic!("no {step} step in {msgs:?}"));
        m["status"].as_str().unwrap_or_default().to_string()
    }
}

#[test]
fn secret_values_are_only_in_the_cas() {
    let registry = Registry::start();
    let webdav = Webdav::start();
    let image = format!("{}/cicd/python_hello_user:latest", registry.addr());
    let oci_cache = format!("oci://{}/scone-cache", registry.addr());
    let http_cache = webdav.url("cache");
    let mut p = Project::new(image);

    // Apply to the local CAS, every step uploaded to the HTTP cache.
    p.scone(&[
        "apply",
        "-f",
        "mesh.yml",
        "-v",
        "--remote-cache",
        &http_cache,
        "--remote-cache-write",
    ]);
    // Builds: the build state goes to target/.scone; the second one is
    // replayed from it.
    p.scone(&["build", "-f", "mesh.yml", "-v"]);
    p.scone(&["build", "-f", "mesh.yml", "--message-format", "json"]);
    // From scratch: every step uploaded to the registry cache, images pushed.
    p.scone(&["clean"]);
    p.scone(&[
        "apply",
        "-f",
        "mesh.yml",
        "--push",
        "--message-format",
        "json",
        "--remote-cache",
        &oci_cache,
        "--remote-cache-write",
    ]);
    // A new fixed value reaches CAS; the policy step does not run for it: the
    // value is not part of its fingerprint or its output.
    p.set_fixed(FIXED[1]);
    p.scone(&[
        "apply",
        "-f",
        "mesh.yml",
        "--push",
        "--message-format",
        "json",
    ]);
    let statuses = (p.status("policy"), p.status("upload"));
    p.set_fixed(FIXED[2]);
    p.scone(&["apply", "-f", "mesh.yml", "--push", "-v", "--explain"]);
    p.scone(&["apply", "-f", "mesh.yml", "--message-format", "json"]);
    p.scone(&["cas", "session", "myPythonApp"]);
    p.scone(&["graph", "-f", "mesh.yml", "--format", "json"]);
    p.scone(&["check", "-f", "mesh.yml"]);

    // CAS has the values: the last fixed ones, byte-exact, and generated ones.
    let cas_dir = p.sb.path().join("cas");
    let cas = scone::cas::local::LocalCas::open(&cas_dir).expect("the local CAS");
    let values = cas.secret_values("myPythonApp").expect("the session");
    assert_eq!(values["db_password"].expose_str(), Some(FIXED[2]));
    assert_eq!(values["banner"].expose_str(), Some(FIXED_LINES));
    assert_eq!(values["password"].expose_bytes().len(), 10);
    assert_eq!(values["token"].expose_bytes().len(), 24);
    let mut needles = Needles::new();
    for (name, value) in &values {
        needles.value(&format!("CAS secret `{name}`"), value.expose_bytes());
        if let Some(text) = value.expose_str() {
            needles.lines(&format!("CAS secret `{name}`"), text);
        }
    }
    for (i, fixed) in FIXED.iter().enumerate() {
        needles.value(&format!("fixed value {i}"), fixed.as_bytes());
    }
    needles.lines("fixed multi-line value", FIXED_LINES);
    needles.signing_key(&support::sig1_key());

    // Every file of the sandbox but the CAS and the manifest that holds the
    // fixed value: target/, scone.lock, the user cache, config and data
    // folders; and the remote caches' storage.
    let roots = [
        p.sb.path().to_path_buf(),
        webdav.data(),
        registry.storage().to_path_buf(),
    ];
    let allowed = [cas_dir.clone(), p.dir.join("service.yml")];
    let (files, mut leaks) = needles.leaks_under(&roots, &allowed);
    assert!(
        files > 100,
        "{files} files searched: target/, caches, registry"
    );
    for place in [
        p.dir.join("target/policy/myPythonApp.yaml"),
        p.dir.join("scone.lock"),
        p.sb.path().join("cache"),
        webdav.data().join("cache/ac"),
    ] {
        assert!(place.exists(), "{} was written", place.display());
    }
    let stored: Vec<String> = walkdir::WalkDir::new(registry.storage())
        .into_iter()
        .filter_map(Result::ok)
        .map(|e| e.path().display().to_string())
        .collect();
    for repository in ["repositories/scone-cache/", "repositories/cicd/"] {
        assert!(
            stored.iter().any(|p| p.contains(repository)),
            "the registry holds {repository}: {stored:?}"
        );
    }
    for (args, out) in &p.outputs {
        leaks.extend(needles.leaks_in(&format!("stdout of scone {args}"), &out.stdout));
        leaks.extend(needles.leaks_in(&format!("stderr of scone {args}"), &out.stderr));
    }
    assert!(
        leaks.is_empty(),
        "{} secret values ({} forms) found outside the CAS:\n{}",
        leaks.len(),
        needles.len(),
        report(&leaks)
    );
    assert_eq!(
        values[scone::cas::fixed::SALT_SECRET].expose_bytes().len(),
        43,
        "a session with fixed values is salted"
    );
    // The policy under target/ declares the fixed ones with a placeholder.
    let policy =
        std::fs::read_to_string(p.dir.join("target/policy/myPythonApp.yaml")).expect("the policy");
    let session = scone::cas::session::parse_session(&policy).expect("a session");
    for name in ["db_password", "banner"] {
        let secret = session.secrets.iter().find(|s| s.name == name).expect(name);
        assert_eq!(
            secret.value.as_deref(),
            Some(scone::cas::fixed::PLACEHOLDER)
        );
    }

    assert_eq!(
        statuses,
        ("fresh".to_string(), "built".to_string()),
        "a new fixed value is uploaded, and the policy step does not run for it"
    );
}

/// The needles find what they look for (so an empty result means something).
#[test]
fn the_needles_find_values_in_every_form_and_in_compressed_files() {
    use base64::Engine as _;
    use std::io::Write;
    let mut needles = Needles::new();
    needles.value("v", b"fixedDbPw-4711-QzXk");
    needles.signing_key(&support::sig1_key());
    let hidden = |bytes: &[u8]| [b"prefix ".as_slice(), bytes, b" suffix"].concat();
    for form in [
        b"fixedDbPw-4711-QzXk".to_vec(),
        hex::encode(b"fixedDbPw-4711-QzXk").into_bytes(),
        base64::engine::general_purpose::STANDARD
            .encode(b"fixedDbPw-4711-QzXk")
            .into_bytes(),
    ] {
        assert_eq!(needles.leaks_in("x", &hidden(&form)).len(), 1, "{form:?}");
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&hidden(b"fixedDbPw-4711-QzXk")).expect("gzip");
    let gz = gz.finish().expect("gzip");
    assert!(!support::secrets::contains(&gz, b"fixedDbPw"));
    assert_eq!(needles.leaks_in("x.gz", &gz).len(), 1);
    let pem = std::fs::read(support::sig1_key()).expect("key");
    assert!(!needles.leaks_in("pem", &pem).is_empty());
    let body: String = String::from_utf8_lossy(&pem)
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("base64");
    let mut reversed = der.clone();
    reversed.reverse();
    assert!(needles.leaks_in("der", &der).len() > 20);
    assert!(needles.leaks_in("der, reversed", &reversed).len() > 20);
    assert!(needles.leaks_in("clean", b"nothing secret here").is_empty());
}

/// Runs `scone check` (human messages, then JSON) in a copy of hello-world
/// whose service manifest declares `local` (YAML lines) as its local
/// secrets, at line 20. Each run must fail, name `service.yml` and `line`,
/// show the source line there (human form), and hold none of `secrets` in
/// stdout or stderr.
fn check_names_the_line_but_no_value(local: &str, line: u32, secrets: &[&str]) {
    let marker = "secrets:\n  global: \n";
    check_edit_names_the_line_but_no_value(
        marker,
        &format!("secrets:\n  local:\n{local}  global: \n"),
        line,
        secrets,
    );
}

/// [`check_names_the_line_but_no_value`] with hello-world's service manifest
/// edited: `marker` (once in it) replaced by `with`.
fn check_edit_names_the_line_but_no_value(marker: &str, with: &str, line: u32, secrets: &[&str]) {
    let sb = Sandbox::new();
    let dir = sb.hello_world("app");
    let path = dir.join("service.yml");
    let text = std::fs::read_to_string(&path).expect("service.yml");
    assert_eq!(text.matches(marker).count(), 1, "{text}");
    let text = text.replace(marker, with);
    std::fs::write(&path, &text).expect("service.yml");
    for secret in secrets {
        assert!(text.contains(secret), "{secret} is in the manifest");
    }

    for format in ["human", "json"] {
        let out = sb
            .scone(&dir)
            .args(["check", "--message-format", format])
            .output()
            .expect("runs scone");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let shown = format!("--- {format}, stdout:\n{stdout}--- stderr:\n{stderr}");
        assert_eq!(out.status.code(), Some(2), "{shown}");
        for secret in secrets {
            assert!(!stdout.contains(secret), "{secret} in stdout\n{shown}");
            assert!(!stderr.contains(secret), "{secret} in stderr\n{shown}");
        }
        // Human messages go to stderr; with JSON, errors are there too.
        let headline = stderr
            .lines()
            .position(|l| l.starts_with(&format!("error: service.yml:{line}:")))
            .unwrap_or_else(|| panic!("no error at service.yml:{line}\n{shown}"));
        let excerpt = stderr
            .lines()
            .nth(headline + 2)
            .unwrap_or_default()
            .to_string();
        assert!(
            excerpt.starts_with(&format!("{line} | ")) && excerpt.contains("***"),
            "the source line, masked: {excerpt:?}\n{shown}"
        );
        if format == "json" {
            let msgs = messages(&out.stdout);
            assert!(
                msgs.iter().any(|m| m["reason"] == "diagnostic"
                    && m["file"] == "service.yml"
                    && m["line"] == line),
                "no JSON diagnostic at service.yml:{line}\n{shown}"
            );
        }
    }
}

#[test]
fn a_flow_style_secret_with_a_kind_typo_is_masked_on_its_line() {
    check_names_the_line_but_no_value(
        "  - { name: tok, kind: asci, value: flowStyle-Secret-4711 }\n",
        21,
        &["flowStyle-Secret-4711"],
    );
}

#[test]
fn a_yaml_error_inside_a_secret_value_does_not_show_it() {
    check_names_the_line_but_no_value(
        "  - name: tok\n    kind: ascii\n    value: brokenYaml-Secret-4712: x\n",
        23,
        &["brokenYaml-Secret-4712"],
    );
}

#[test]
fn a_block_scalar_secret_with_a_broken_line_is_masked_on_every_line() {
    check_names_the_line_but_no_value(
        "  - name: pem\n    kind: ascii\n    value: |\n      blockLineOne-Secret-4713\n     blockLineTwo-Secret-4713\n",
        25,
        &["blockLineOne-Secret-4713", "blockLineTwo-Secret-4713"],
    );
}

#[test]
fn a_duplicate_value_key_shows_neither_value() {
    check_names_the_line_but_no_value(
        "  - name: tok\n    kind: ascii\n    value: firstValue-Secret-4714\n    value: secondValue-Secret-4714\n",
        24,
        &["firstValue-Secret-4714", "secondValue-Secret-4714"],
    );
}

#[test]
fn a_list_as_a_secret_value_is_masked() {
    check_names_the_line_but_no_value(
        "  - name: tok\n    kind: ascii\n    value:\n    - listItem-Secret-4715\n",
        24,
        &["listItem-Secret-4715"],
    );
}

#[test]
fn a_message_quoting_a_secret_value_masks_it() {
    // The parser names a duplicate key inside the value; the template
    // engine a variable.
    check_names_the_line_but_no_value(
        "  - { name: tok, kind: ascii, value: {dupKey-Secret-4716: 1, dupKey-Secret-4716: 2} }\n",
        21,
        &["dupKey-Secret-4716"],
    );
    check_names_the_line_but_no_value(
        "  - name: tok\n    kind: ascii\n    value: abc{{template-Secret-4717}}\n",
        23,
        &["template-Secret-4717"],
    );
}

#[test]
fn a_secret_value_written_without_its_indentation_is_masked() {
    // `value: |` (or `value:`) and the text on the next line at column 0:
    // YAML reads it as a top-level key, and the error (an unknown field)
    // named it and showed its line. The last secret of the section, so
    // that `build:` comes after it.
    let size = "    size: 10\n";
    let cases = [
        ("    value: |\nblockAtColumn0-Secret-4718: x\n", 28),
        ("    value:\nemptyValue-Secret-4719: x\n", 28),
        (
            "    value: >-\n\n# a comment\nafterComment-Secret-4720: x\n",
            30,
        ),
    ];
    for (value, line) in cases {
        let secret = value
            .lines()
            .last()
            .and_then(|l| l.split(':').next())
            .expect("a secret");
        check_edit_names_the_line_but_no_value(
            size,
            &format!("{size}  local:\n  - name: tok\n    kind: ascii\n{value}"),
            line,
            &[secret],
        );
    }
}
