//! The Helm chart library against the real tools: `helm lint --strict`, `helm template` piped
//! into `kubernetes-validate --strict`, for the seed's hello world and a 20-service mesh; image
//! digests taken from real OCI image layouts; stable output; user template folders.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use scone::helm::{self, ChartInput, ChartPort, ChartService, HelmError, LasAddr, RenderedChart};
use sha2::{Digest, Sha256};

/// The Kubernetes version helm 3.17 renders for (`.Capabilities.KubeVersion`).
const KUBERNETES_VERSION: &str = "1.32.0";

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Writes a small but real OCI image layout for `service` under `images/<service>/` and
/// returns its manifest digest, read back from `index.json` the way the chart step does.
fn oci_layout(images: &Path, service: &str) -> String {
    let dir = images.join(service);
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).expect("blob folder");
    let put = |bytes: &[u8]| -> String {
        let digest = sha256(bytes);
        let hex = digest.trim_start_matches("sha256:");
        std::fs::write(blobs.join(hex), bytes).expect("blob");
        digest
    };
    let layer = format!("layer of {service}").into_bytes();
    let layer_digest = put(&layer);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": [format!("SERVICE={service}")]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]}
    });
    let config = serde_json::to_vec(&config).expect("config json");
    let config_digest = put(&config);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer.len()}]
    });
    let manifest = serde_json::to_vec(&manifest).expect("manifest json");
    let manifest_digest = put(&manifest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": manifest_digest, "size": manifest.len()}]
    });
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&index).expect("index"),
    )
    .expect("index.json");
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("oci-layout");

    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).expect("read index"))
            .expect("parse index");
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .expect("a manifest digest")
        .to_owned();
    let blob = blobs.join(digest.trim_start_matches("sha256:"));
    assert_eq!(sha256(&std::fs::read(blob).expect("manifest blob")), digest);
    digest
}

/// The seed: one service `python_app` in namespace `myPythonApp`.
fn hello_world(images: &Path) -> ChartInput {
    let mut input = ChartInput::new("myPythonApp", "5e551a7e", "edge.scone-cas.cf");
    input.services.push(ChartService::new(
        "myPythonApp",
        "python_app",
        "registry.scontain.com:5050/cicd/python_hello_user",
        &oci_layout(images, "python_hello_user"),
    ));
    input
}

/// 20 services, every one with ports (some two, some UDP), env and resources.
fn mesh20(images: &Path) -> ChartInput {
    let mut input = ChartInput::new("shop", "0123abcd", "cas.example.com:8081");
    input.chart_version = "1.2.3".to_owned();
    input.las = LasAddr::NodeIpPort(18766);
    for i in 0..20 {
        let name = format!("svc_{i:02}");
        let mut service = ChartService::new(
            "shop",
            &name,
            &format!("registry.example.com/shop/{name}"),
            &oci_layout(images, &name),
        );
        service.ports.push(ChartPort::tcp("http", 8000 + i));
        if i % 3 == 0 {
            service.ports.push(ChartPort {
                name: "metrics_port".to_owned(),
                port: 9000 + i,
                protocol: "udp".to_owned(),
            });
        }
        service.env.push(("SHOP_INDEX".to_owned(), i.to_string()));
        service
            .env
            .push(("LITERAL".to_owned(), "$(NOT_EXPANDED)".to_owned()));
        service
            .resources
            .requests
            .insert("memory".to_owned(), "64Mi".to_owned());
        service
            .resources
            .limits
            .insert("cpu".to_owned(), "500m".to_owned());
        service.replicas = 1 + u32::from(i % 2);
        input.services.push(service);
    }
    input
}

/// Writes the chart to `<root>/target/helm` and the manifests to `<root>/target/manifests`.
fn write(chart: &RenderedChart, root: &Path) -> (PathBuf, PathBuf) {
    let helm_dir = root.join("target").join("helm");
    let manifests = root.join("target").join("manifests");
    helm::write_chart(chart, &helm_dir).expect("write chart");
    helm::write_manifests(chart, &manifests).expect("write manifests");
    (helm_dir, manifests)
}

/// Runs `cmd`, feeding `stdin`; returns stdout and stderr joined; asserts exit 0.
fn run(mut cmd: Command, stdin: &str, what: &str) -> String {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{text}",
        out.status
    );
    text
}

fn helm_lint(chart: &Path) -> String {
    let mut cmd = support::tools::helm();
    cmd.arg("lint").arg("--strict").arg(chart);
    run(cmd, "", "helm lint --strict")
}

fn helm_template(chart: &Path, release: &str) -> String {
    let mut cmd = support::tools::helm();
    cmd.arg("template").arg(release).arg(chart);
    let mut out = cmd.output().expect("helm template runs");
    assert!(
        out.status.success(),
        "helm template failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(std::mem::take(&mut out.stdout)).expect("utf-8 output")
}

fn kubernetes_validate(yaml: &str) -> String {
    let mut cmd = support::tools::kubernetes_validate();
    cmd.args(["--strict", "--kubernetes-version", KUBERNETES_VERSION, "-"]);
    run(cmd, yaml, "kubernetes-validate --strict")
}

fn documents(yaml: &str) -> Vec<serde_json::Value> {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(yaml).expect("valid YAML");
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

fn kind_and_name(doc: &serde_json::Value) -> (String, String) {
    let kind = doc["kind"].as_str().expect("kind").to_owned();
    let name = doc["metadata"]["name"].as_str().expect("name").to_owned();
    (kind, name)
}

/// Lints, templates and validates the chart; checks every expected object is named in
/// kubernetes-validate's report and rendered with the digest it was given.
fn check_with_real_tools(input: &ChartInput, root: &Path) -> Vec<serde_json::Value> {
    let chart = helm::render(input, None).expect("render");
    let (helm_dir, _) = write(&chart, root);
    let lint = helm_lint(&helm_dir);
    assert!(lint.contains("0 chart(s) failed"), "{lint}");

    let rendered = helm_template(&helm_dir, "x");
    let report = kubernetes_validate(&rendered);
    let docs = documents(&rendered);
    let mut expected = Vec::new();
    for service in &input.services {
        let (key, _) = helm::dns1123(&service.name);
        expected.push(format!("deployment/{key}"));
        if !service.ports.is_empty() {
            expected.push(format!("service/{key}"));
        }
        let deployment = docs
            .iter()
            .find(|d| kind_and_name(d) == ("Deployment".to_owned(), key.clone()))
            .unwrap_or_else(|| panic!("no Deployment {key} in:\n{rendered}"));
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        let image = format!("{}@{}", service.image_repository, service.image_digest);
        assert_eq!(container["image"], serde_json::json!(image));
        let env = container["env"].as_array().expect("env");
        let value_of = |name: &str| {
            env.iter()
                .find(|e| e["name"] == name)
                .unwrap_or_else(|| panic!("{name} missing"))
        };
        assert_eq!(
            value_of("SCONE_CONFIG_ID")["value"],
            serde_json::json!(service.config_id)
        );
        assert_eq!(
            value_of("SCONE_CAS_ADDR")["value"],
            serde_json::json!(input.cas_addr)
        );
        assert!(rendered.contains("fieldPath: status.hostIP"));
        let limits = &container["resources"]["limits"];
        assert_eq!(limits[helm::SCONE_SGX_RESOURCE], serde_json::json!("1"));
    }
    for name in &expected {
        assert!(
            report.contains(&format!("passed for resource {name} ")),
            "kubernetes-validate did not check {name}:\n{report}"
        );
    }
    assert_eq!(
        docs.len(),
        expected.len(),
        "one object per expected resource"
    );
    docs
}

#[test]
fn hello_world_passes_helm_lint_and_kubernetes_validate() {
    let root = tempfile::tempdir().expect("tempdir");
    let input = hello_world(&root.path().join("target/images"));
    let docs = check_with_real_tools(&input, root.path());
    let (kind, name) = kind_and_name(&docs[0]);
    assert_eq!((kind.as_str(), name.as_str()), ("Deployment", "python-app"));
    let env = &docs[0]["spec"]["template"]["spec"]["containers"][0]["env"];
    assert_eq!(env[0]["value"], "myPythonApp/python_app");

    // values.schema.json keeps `--set` from unpinning an image.
    let mut cmd = support::tools::helm();
    cmd.args([
        "template",
        "x",
        "--set",
        "services.python-app.image.digest=latest",
    ]);
    let out = cmd
        .arg(root.path().join("target/helm"))
        .output()
        .expect("helm");
    assert!(!out.status.success(), "an unpinned image passed the schema");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("services.python-app.image.digest"),
        "{stderr}"
    );
}

#[test]
fn twenty_services_with_ports_pass_helm_lint_and_kubernetes_validate() {
    let root = tempfile::tempdir().expect("tempdir");
    let input = mesh20(&root.path().join("target/images"));
    let docs = check_with_real_tools(&input, root.path());
    let service = docs
        .iter()
        .find(|d| kind_and_name(d) == ("Service".to_owned(), "svc-03".to_owned()))
        .expect("Service svc-03");
    let ports = service["spec"]["ports"].as_array().expect("ports");
    assert_eq!(ports.len(), 2);
    assert_eq!(ports[1]["name"], "metrics-port");
    assert_eq!(ports[1]["protocol"], "UDP");
    let deployment = docs
        .iter()
        .find(|d| kind_and_name(d) == ("Deployment".to_owned(), "svc-03".to_owned()))
        .expect("Deployment svc-03");
    let env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .expect("env");
    let las = env
        .iter()
        .find(|e| e["name"] == "SCONE_LAS_ADDR")
        .expect("LAS");
    assert_eq!(las["value"], "$(SCONE_NODE_IP):18766");
    let literal = env
        .iter()
        .find(|e| e["name"] == "LITERAL")
        .expect("LITERAL");
    assert_eq!(
        literal["value"], "$$(NOT_EXPANDED)",
        "escaped from Kubernetes expansion"
    );
}

#[test]
fn plain_manifests_are_what_helm_renders_and_validate() {
    let root = tempfile::tempdir().expect("tempdir");
    let input = mesh20(&root.path().join("target/images"));
    let chart = helm::render(&input, None).expect("render");
    let (helm_dir, manifests) = write(&chart, root.path());
    // The plain manifests name the release after the chart (several services).
    let from_helm = documents(&helm_template(&helm_dir, "shop"));
    let helm_only = ["app.kubernetes.io/managed-by", "helm.sh/chart"];
    let normalize = |mut doc: serde_json::Value| {
        if let Some(labels) = doc["metadata"]["labels"].as_object_mut() {
            for label in helm_only {
                labels.remove(label);
            }
        }
        doc
    };
    let mut helm_objects: BTreeMap<(String, String), serde_json::Value> = from_helm
        .into_iter()
        .map(|d| (kind_and_name(&d), normalize(d)))
        .collect();
    let mut files = 0;
    for entry in std::fs::read_dir(&manifests).expect("manifests folder") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("manifest");
        kubernetes_validate(&text);
        files += 1;
        for doc in documents(&text) {
            assert_eq!(
                doc["metadata"]["labels"]["app.kubernetes.io/managed-by"],
                "scone"
            );
            let key = kind_and_name(&doc);
            let from_helm = helm_objects
                .remove(&key)
                .unwrap_or_else(|| panic!("{key:?} is not in the chart"));
            assert_eq!(
                normalize(doc),
                from_helm,
                "{key:?} differs from helm template"
            );
        }
    }
    assert_eq!(files, 20, "one manifest file per service");
    assert!(
        helm_objects.is_empty(),
        "missing plain manifests: {:?}",
        helm_objects.keys()
    );
}

#[test]
fn one_changed_digest_changes_only_that_services_values() {
    let root = tempfile::tempdir().expect("tempdir");
    let images = root.path().join("target/images");
    let before = mesh20(&images);
    let mut after = before.clone();
    after.services.reverse(); // input order must not matter
    let changed = after
        .services
        .iter_mut()
        .find(|s| s.name == "svc_07")
        .expect("svc_07");
    changed.image_digest = oci_layout(&root.path().join("other"), "svc_07_rebuilt");
    let new_digest = changed.image_digest.clone();

    let first = helm::render(&before, None).expect("render before");
    let again = helm::render(&before, None).expect("render again");
    assert_eq!(first, again, "rendering is deterministic");
    let second = helm::render(&after, None).expect("render after");

    let differing: Vec<&PathBuf> = first
        .files
        .keys()
        .filter(|path| first.files.get(*path) != second.files.get(*path))
        .collect();
    assert_eq!(differing, vec![&PathBuf::from("values.yaml")]);
    let old = String::from_utf8(first.files[Path::new("values.yaml")].clone()).expect("utf-8");
    let new = String::from_utf8(second.files[Path::new("values.yaml")].clone()).expect("utf-8");
    let old_lines: Vec<&str> = old.lines().collect();
    let new_lines: Vec<&str> = new.lines().collect();
    assert_eq!(old_lines.len(), new_lines.len());
    let changed_lines: Vec<(usize, &str)> = new_lines
        .iter()
        .enumerate()
        .filter(|(i, line)| old_lines[*i] != **line)
        .map(|(i, line)| (i, *line))
        .collect();
    assert_eq!(changed_lines.len(), 1, "{changed_lines:?}");
    let (at, line) = changed_lines[0];
    assert_eq!(line.trim(), format!("digest: \"{new_digest}\""));
    let owner = new_lines[..at]
        .iter()
        .rev()
        .find(|l| l.starts_with("  ") && !l.starts_with("   "))
        .expect("service key above");
    assert_eq!(owner.trim(), "svc-07:");

    let differing: Vec<&PathBuf> = first
        .manifests
        .keys()
        .filter(|path| first.manifests.get(*path) != second.manifests.get(*path))
        .collect();
    assert_eq!(differing, vec![&PathBuf::from("svc-07.yaml")]);
}

#[test]
fn names_are_sanitized_to_dns1123_with_a_warning_and_the_install_line_as_a_hint() {
    let root = tempfile::tempdir().expect("tempdir");
    let input = hello_world(&root.path().join("target/images"));
    let chart = helm::render(&input, None).expect("render");
    assert_eq!(helm::dns1123("python_app"), ("python-app".to_owned(), true));
    let warnings = chart.warnings.join("\n");
    assert!(warnings.contains("`python_app`"), "{warnings}");
    assert!(warnings.contains("`python-app`"), "{warnings}");
    assert!(
        !warnings.contains("helm install"),
        "the install line is a hint, not a warning: {warnings}"
    );
    assert_eq!(
        chart.install.as_deref(),
        Some("helm install python-app target/helm")
    );
    for file in ["README.md", "templates/NOTES.txt"] {
        let text = String::from_utf8(chart.files[Path::new(file)].clone()).expect("utf-8");
        assert!(
            text.contains("helm install python-app target/helm"),
            "{file}:\n{text}"
        );
        assert!(text.contains("python_app"), "{file} names the mesh service");
    }
    let chart_yaml =
        String::from_utf8(chart.files[Path::new("Chart.yaml")].clone()).expect("utf-8");
    assert!(chart_yaml.contains("name: mypythonapp\n"), "{chart_yaml}");
    assert!(
        chart_yaml.contains("appVersion: \"5e551a7e\"\n"),
        "{chart_yaml}"
    );

    // Helm itself refuses the seed's release name and takes the corrected one.
    let (helm_dir, _) = write(&chart, root.path());
    let mut cmd = support::tools::helm();
    let refused = cmd
        .args(["template", "python_app"])
        .arg(&helm_dir)
        .output()
        .expect("helm");
    assert!(
        !refused.status.success(),
        "helm accepted a non-DNS-1123 release name"
    );
    let notes = {
        let mut cmd = support::tools::helm();
        cmd.args([
            "template",
            "python-app",
            "--show-only",
            "templates/deployment.yaml",
        ]);
        cmd.arg(&helm_dir);
        run(cmd, "", "helm template python-app")
    };
    assert!(
        notes.contains("app.kubernetes.io/instance: python-app"),
        "{notes}"
    );
}

#[test]
fn every_service_name_collision_and_secret_is_refused() {
    let digest = format!("sha256:{}", "0".repeat(64));
    let mut input = ChartInput::new("ns", "abc", "cas");
    input
        .services
        .push(ChartService::new("ns", "a_b", "r/a", &digest));
    input
        .services
        .push(ChartService::new("ns", "a-b", "r/b", &digest));
    let err = helm::render(&input, None).expect_err("collision");
    assert!(matches!(err, HelmError::NameCollision { .. }), "{err}");

    let mut input = ChartInput::new("ns", "abc", "cas");
    let mut service = ChartService::new("ns", "api", "r/api", &digest);
    service
        .env
        .push(("API_PASSWORD".to_owned(), "$$SCONE::password$$".to_owned()));
    input.services.push(service);
    let err = helm::render(&input, None)
        .expect_err("secret in env")
        .to_string();
    assert!(
        err.contains("API_PASSWORD") && err.contains("CAS secret"),
        "{err}"
    );
    assert!(
        !err.contains("password$$"),
        "the value stays out of the message: {err}"
    );

    let mut input = ChartInput::new("ns", "abc", "cas");
    input
        .services
        .push(ChartService::new("ns", "api", "r/api:latest", &digest));
    let err = helm::render(&input, None)
        .expect_err("tag in repository")
        .to_string();
    assert!(err.contains("without tag or digest"), "{err}");

    let mut input = ChartInput::new("ns", "abc", "cas");
    input
        .services
        .push(ChartService::new("ns", "api", "r/api", "sha256:xyz"));
    let err = helm::render(&input, None)
        .expect_err("bad digest")
        .to_string();
    assert!(err.contains("sha256:<64 hex digits>"), "{err}");
}

/// Writes `files` (name → text) into a new user template folder.
fn user_templates(root: &Path, folder: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = root.join(folder);
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("folder");
        std::fs::write(&path, text).expect("template");
    }
    dir
}

#[test]
fn links_in_a_user_template_folder_are_refused_not_followed() {
    // The chart step's inputs are the folder's own entries: an edit behind a
    // link would leave the chart as it was, so a link is an error.
    let root = tempfile::tempdir().expect("tempdir");
    let input = hello_world(&root.path().join("target/images"));
    let shared = user_templates(root.path(), "shared", &[("cm.yaml", "kind: ConfigMap\n")]);
    let file = user_templates(root.path(), "file", &[("values.yaml", "x: 1\n")]);
    std::fs::create_dir_all(file.join("templates")).expect("folder");
    std::os::unix::fs::symlink(shared.join("cm.yaml"), file.join("templates/cm.yaml"))
        .expect("link");
    let folder = user_templates(root.path(), "folder", &[("values.yaml", "x: 1\n")]);
    std::os::unix::fs::symlink(&shared, folder.join("templates")).expect("link");
    let whole = root.path().join("whole");
    std::os::unix::fs::symlink(&shared, &whole).expect("link");
    for (dir, link) in [
        (&file, file.join("templates/cm.yaml")),
        (&folder, folder.join("templates")),
        (&whole, whole.clone()),
    ] {
        let err = helm::render(&input, Some(dir)).expect_err("a link");
        let message = err.to_string();
        assert!(
            message.contains(&link.display().to_string()) && message.contains("is a link"),
            "{message}"
        );
    }
}

#[test]
fn a_user_template_with_a_syntax_error_gives_file_and_line() {
    let root = tempfile::tempdir().expect("tempdir");
    let input = hello_world(&root.path().join("target/images"));
    let broken = "# mine\nservices:\n{{#each services}}\n  {{key}}: {{yaml name}\n{{/each}}\n";
    let dir = user_templates(root.path(), "broken", &[("values.yaml.hbs", broken)]);
    let err = helm::render(&input, Some(&dir)).expect_err("syntax error");
    let HelmError::TemplateSyntax { at, .. } = &err else {
        panic!("not a syntax error: {err}");
    };
    assert_eq!(at.path, dir.join("values.yaml.hbs"));
    assert_eq!(at.line, Some(4), "{err}");
    assert!(at.column.is_some(), "{err}");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("{}:4:", dir.join("values.yaml.hbs").display())),
        "{message}"
    );

    let unknown = "name: x\nversion: 0.1.0\napiVersion: v2\nappVersion: {{nosuch.field}}\n";
    let dir = user_templates(root.path(), "unknown", &[("Chart.yaml.hbs", unknown)]);
    let err = helm::render(&input, Some(&dir)).expect_err("unknown variable");
    let HelmError::TemplateRender { at, .. } = &err else {
        panic!("not a render error: {err}");
    };
    assert_eq!(at.path, dir.join("Chart.yaml.hbs"));
    assert_eq!(at.line, Some(4), "{err}");
}

#[test]
fn user_templates_override_files_and_go_text_passes_untouched() {
    let root = tempfile::tempdir().expect("tempdir");
    let input = hello_world(&root.path().join("target/images"));
    let config_map = "{{- range $key, $svc := .Values.services }}\n---\napiVersion: v1\n\
        kind: ConfigMap\nmetadata:\n  name: {{ $key }}-info\ndata:\n  \
        config-id: {{ $svc.scone.configId | quote }}\n{{- end }}\n";
    let notes = "Release {{{{raw}}}}{{ .Release.Name }}{{{{/raw}}}} of {{chart.name}}\n";
    let custom_chart = "apiVersion: v2\nname: custom\nversion: 9.9.9\n";
    let dir = user_templates(
        root.path(),
        "mine",
        &[
            ("templates/configmap.yaml", config_map),
            ("templates/NOTES.txt.hbs", notes),
            ("Chart.yaml", custom_chart),
        ],
    );
    let chart = helm::render(&input, Some(&dir)).expect("render");
    assert_eq!(
        chart.files[Path::new("templates/configmap.yaml")],
        config_map.as_bytes(),
        "a static file is copied byte for byte"
    );
    assert_eq!(
        chart.files[Path::new("templates/NOTES.txt")],
        b"Release {{ .Release.Name }} of mypythonapp\n"
    );
    assert!(chart
        .files
        .contains_key(Path::new("templates/deployment.yaml")));
    assert_eq!(
        chart.files[Path::new("Chart.yaml")],
        custom_chart.as_bytes(),
        "a user's static Chart.yaml replaces the embedded Chart.yaml.hbs"
    );

    let (helm_dir, _) = write(&chart, root.path());
    helm_lint(&helm_dir);
    let rendered = helm_template(&helm_dir, "python-app");
    let report = kubernetes_validate(&rendered);
    assert!(report.contains("configmap/python-app-info"), "{report}");
    assert!(
        rendered.contains("config-id: \"myPythonApp/python_app\""),
        "{rendered}"
    );
    assert!(
        rendered.contains("helm.sh/chart: custom-9.9.9"),
        "{rendered}"
    );

    let both = user_templates(
        root.path(),
        "both",
        &[("values.yaml", "a: 1\n"), ("values.yaml.hbs", "a: 2\n")],
    );
    let err = helm::render(&input, Some(&both)).expect_err("two files for values.yaml");
    assert!(matches!(err, HelmError::TemplateFolder { .. }), "{err}");
    assert!(err.to_string().contains("keep one of them"), "{err}");
}
