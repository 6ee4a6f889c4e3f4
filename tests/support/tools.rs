//! Test support: the external tools the tests drive (helm, kubernetes-validate, skopeo,
//! umoci, ninja). Each is looked up on `PATH`; a missing tool fails the test loudly with
//! the one command that installs it (`scripts/ci-deps.sh`) instead of skipping silently.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The executable `tool` on `PATH`, if there is one.
pub fn find(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|candidate| is_executable(candidate))
}

/// The executable `tool` on `PATH`; panics with how to install it when it is missing.
pub fn require(tool: &str) -> PathBuf {
    match find(tool) {
        Some(path) => path,
        None => panic!("`{tool}` is not installed: run scripts/ci-deps.sh"),
    }
}

/// A `Command` for `tool`, found on `PATH` (panics when missing, see [`require`]).
pub fn command(tool: &str) -> Command {
    Command::new(require(tool))
}

/// `helm`, with its cache, config and data homes in a folder private to this test
/// process, so tests neither read nor change the user's helm state.
pub fn helm() -> Command {
    let mut cmd = command("helm");
    let home = helm_home();
    cmd.env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"));
    cmd
}

/// `kubernetes-validate` (offline Kubernetes schema checks; `--strict -` reads stdin).
pub fn kubernetes_validate() -> Command {
    command("kubernetes-validate")
}

/// `skopeo` (copies and inspects images in registries and OCI layouts).
pub fn skopeo() -> Command {
    command("skopeo")
}

/// `umoci` (unpacks OCI image layouts into a rootfs).
pub fn umoci() -> Command {
    command("umoci")
}

/// `ninja` (the reference build tool of the no-op benchmark).
pub fn ninja() -> Command {
    command("ninja")
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// `<cargo's per-target tmp dir>/helm-home/<pid>`, created once per process. Folders of
/// processes that no longer run are removed first, so they do not pile up.
fn helm_home() -> &'static Path {
    static HOME: OnceLock<PathBuf> = OnceLock::new();
    HOME.get_or_init(|| {
        let parent = Path::new(env!("CARGO_TARGET_TMPDIR")).join("helm-home");
        remove_dead_process_dirs(&parent);
        let home = parent.join(std::process::id().to_string());
        for sub in ["cache", "config", "data"] {
            let dir = home.join(sub);
            if let Err(err) = std::fs::create_dir_all(&dir) {
                panic!("cannot create the helm home {}: {err}", dir.display());
            }
        }
        home
    })
}

fn remove_dead_process_dirs(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let alive = name
            .to_str()
            .and_then(|pid| pid.parse::<u32>().ok())
            .map(|pid| Path::new("/proc").join(pid.to_string()).exists());
        if alive == Some(false) {
            // Best effort: another test process may be removing it at the same time.
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// `skopeo inspect` of an image (`docker://…` is reached over plain HTTP, as the
/// tests' registries are on loopback): its JSON, or `Err(stderr)` when skopeo
/// cannot find or read it.
pub fn skopeo_inspect(image: &str) -> Result<serde_json::Value, String> {
    let mut cmd = skopeo();
    cmd.arg("inspect");
    if image.starts_with("docker://") {
        cmd.arg("--tls-verify=false");
    }
    let out = cmd.arg(image).output().expect("running skopeo");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("skopeo printed no JSON: {e}"))
}

/// The tags of a repository (`HOST:PORT/REPO`, plain HTTP) as `skopeo list-tags` sees them.
pub fn skopeo_list_tags(repository: &str) -> Vec<String> {
    let out = skopeo()
        .args(["list-tags", "--tls-verify=false"])
        .arg(format!("docker://{repository}"))
        .output()
        .expect("running skopeo");
    assert!(
        out.status.success(),
        "skopeo list-tags: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("skopeo JSON");
    value["Tags"]
        .as_array()
        .map(|tags| {
            tags.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The manifest of `HOST:PORT/REPO:TAG` exactly as the registry serves it.
pub fn skopeo_raw_manifest(image: &str) -> serde_json::Value {
    let out = skopeo()
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{image}"))
        .output()
        .expect("running skopeo");
    assert!(
        out.status.success(),
        "skopeo inspect --raw: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a JSON manifest")
}

/// The Python of the venv `scripts/ci-deps.sh` makes (`$SCONE_VENV`, else
/// `/opt/scone-venv`): it has `jsonschema`, `in-toto`, `in-toto-attestation` and
/// `securesystemslib`, the reference checkers of SBOMs and provenance.
pub fn venv_python() -> Command {
    let venv = std::env::var_os("SCONE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/scone-venv"));
    let python = venv.join("bin/python");
    if !is_executable(&python) {
        panic!("{} is not there: run scripts/ci-deps.sh", python.display());
    }
    Command::new(python)
}
