//! The boundaries of `docs/security.md`, tried as an attacker would, through the
//! `scone` binary: each test is named in that page's table and fails if its
//! boundary gives way.
//!
//! The workspace is a generated two-service monorepo (`support::monorepo`:
//! `build.kind binary` on a local `dir:` base, so a build needs no registry and
//! no python rootfs) in a repository (a `.git` folder at its root).

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::monorepo::{generate, MonorepoOptions};
use support::Sandbox;

/// A bound on one command: a command that hangs is killed and fails its test
/// (its exit code is then `None`). Not a speed assertion.
const HANG_GUARD: Duration = Duration::from_secs(120);

/// A sandbox with a two-service monorepo in `repo/`, marked as a repository.
fn checkout() -> (Sandbox, PathBuf) {
    let sb = Sandbox::new();
    let root = sb.path().join("repo");
    generate(
        &root,
        MonorepoOptions {
            services: 2,
            ..MonorepoOptions::default()
        },
    );
    std::fs::create_dir(root.join(".git")).expect("the repository marker");
    (sb, root)
}

/// What a finished command said: its exit code (None: killed) and stderr.
struct Ran {
    code: Option<i32>,
    stderr: String,
}

fn run(sb: &Sandbox, cwd: &Path, args: &[&str]) -> Ran {
    let out = sb
        .scone(cwd)
        .args(args)
        .timeout(HANG_GUARD)
        .output()
        .expect("running scone");
    Ran {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Asserts exit 2 with an error line that starts with `at` (`file:line:`…)
/// and ends with `[code]`.
fn assert_refused(ran: &Ran, at: &str, code: &str, case: &str) {
    let found = ran
        .stderr
        .lines()
        .any(|l| l.starts_with(&format!("error: {at}")) && l.ends_with(&format!("[{code}]")));
    assert!(
        ran.code == Some(2) && found,
        "{case}: want exit 2 and `error: {at}… [{code}]`, got exit {:?}:\n{}",
        ran.code,
        ran.stderr
    );
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("a folder");
    std::fs::write(path, text).expect("writing a test file");
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("reading a test file");
    assert!(text.contains(from), "{} has no `{from}`", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).expect("writing a test file");
}

/// The 1-based line of the first line of `file` containing `needle`.
fn line_of(file: &Path, needle: &str) -> usize {
    std::fs::read_to_string(file)
        .expect("reading a test file")
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{} has no `{needle}`", file.display()))
        + 1
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("listing a folder")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

const SVC0: &str = "services/svc-0000/service.yml";

// ---------------------------------------------------------------------------
// Item 1: the target dir and scone.toml discovery.

#[test]
fn clean_refuses_a_target_dir_scone_did_not_make() {
    let (sb, root) = checkout();
    let victim = sb.path().join("victim");
    write(&victim.join("precious.txt"), "not scone's\n");
    let config = root.join("scone.toml");

    for (setting, case) in [
        (
            "target-dir = \"../victim\"",
            "a folder beside the repository",
        ),
        ("target-dir = \".\"", "the workspace root"),
        ("target-dir = \"..\"", "a folder above the root"),
        ("target-dir = \"services\"", "a folder holding manifests"),
    ] {
        write(&config, &format!("{setting}\n"));
        for cmd in ["check", "clean", "build"] {
            let ran = run(&sb, &root, &[cmd]);
            assert_refused(
                &ran,
                "scone.toml:1:",
                "target-dir",
                &format!("{cmd}, {case}"),
            );
        }
        assert_eq!(
            names_in(&victim),
            ["precious.txt"],
            "{case}: victim touched"
        );
        assert!(
            root.join("mesh.yml").is_file(),
            "{case}: the repository was touched"
        );
        assert!(
            root.join(SVC0).is_file(),
            "{case}: the repository was touched"
        );
    }
    // The same through --target-dir.
    std::fs::remove_file(&config).expect("removing scone.toml");
    let victim_arg = victim.display().to_string();
    for cmd in ["check", "clean", "build"] {
        let ran = run(&sb, &root, &[cmd, "--target-dir", &victim_arg]);
        assert_refused(&ran, "--target-dir", "target-dir", cmd);
        let ran = run(&sb, &root, &[cmd, "--target-dir", "."]);
        assert_refused(&ran, "--target-dir", "target-dir", cmd);
    }
    assert_eq!(names_in(&victim), ["precious.txt"], "victim touched");

    // What scone made, it tags, and cleans.
    let ran = run(&sb, &root, &["build"]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let tag = std::fs::read_to_string(root.join("target/.scone/CACHEDIR.TAG")).expect("the tag");
    assert!(
        tag.starts_with("Signature: 8a477f597d28d172789f06886806bc55"),
        "{tag}"
    );
    let ran = run(&sb, &root, &["clean"]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert!(
        !root.join("target/images").exists(),
        "clean left the images"
    );
    // An empty folder of the user's is adopted; a build then owns it.
    let fresh = sb.path().join("fresh");
    std::fs::create_dir(&fresh).expect("an empty folder");
    let fresh_arg = fresh.display().to_string();
    let ran = run(&sb, &root, &["build", "--target-dir", &fresh_arg]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert!(fresh.join("images").is_dir());
    let ran = run(&sb, &root, &["clean", "--target-dir", &fresh_arg]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert!(!fresh.join("images").exists());
}

/// A target dir inside what the build reads, or holding it: a folder a
/// service copies (its outputs went into the image, the build state with
/// them, growing at every build), a `dir:` base (it changed while the build
/// read it), a key (`scone clean` would remove it). Refused by `check`,
/// `build` and `clean` alike, and nothing is written or removed.
#[test]
fn a_target_dir_inside_or_holding_what_the_build_reads_is_refused() {
    let (sb, root) = checkout();
    let config = root.join("scone.toml");
    for (target, case) in [
        ("services/svc-0000/lib/out", "inside a copied folder"),
        ("base/out", "inside the `dir:` base"),
    ] {
        for cmd in ["check", "build", "clean"] {
            let ran = run(&sb, &root, &[cmd, "--target-dir", target]);
            assert_refused(
                &ran,
                "--target-dir",
                "target-dir",
                &format!("{cmd}, {case}"),
            );
            assert!(ran.stderr.contains("is inside"), "{case}: {}", ran.stderr);
            assert!(!root.join(target).exists(), "{cmd}, {case}: made");
            write(&config, &format!("target-dir = \"{target}\"\n"));
            let ran = run(&sb, &root, &[cmd]);
            assert_refused(
                &ran,
                "scone.toml:1:",
                "target-dir",
                &format!("{cmd}, {case}"),
            );
            std::fs::remove_file(&config).expect("removing scone.toml");
        }
    }
    // An empty copied folder passes every other rule: it was adopted, and a
    // file the user put there later was removed by `scone clean`.
    let assets = root.join("services/svc-0000/lib/assets");
    std::fs::create_dir(&assets).expect("an empty folder");
    let ran = run(
        &sb,
        &root,
        &["build", "--target-dir", "services/svc-0000/lib/assets"],
    );
    assert_refused(&ran, "--target-dir", "target-dir", "a copied empty folder");
    assert_eq!(names_in(&assets), Vec::<String>::new(), "written into");

    // A key the last build's target dir now holds.
    let ran = run(&sb, &root, &["build"]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    write(&root.join("target/prov.pem"), "not a key, but a file\n");
    write(&config, "[provenance]\nkey = \"target/prov.pem\"\n");
    for cmd in ["check", "build", "clean"] {
        let ran = run(&sb, &root, &[cmd]);
        assert!(
            ran.code == Some(2) && ran.stderr.contains("holds `[provenance] key`"),
            "{cmd}: {}",
            ran.stderr
        );
    }
    assert!(
        root.join("target/prov.pem").is_file(),
        "the key was removed"
    );
}

/// A repository can commit `target` as a link to another project's target
/// dir (it has a `.scone/`, so it looks like scone's): a build would write
/// into and prune it, `scone clean` would empty it. Refused (`target-dir`,
/// naming the link and where it leads) unless the target dir is given.
#[test]
fn a_target_dir_linked_out_of_the_workspace_is_refused_unless_given() {
    let (sb, other) = checkout();
    let ran = run(&sb, &other, &["build"]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let outputs = other.join("target");
    let before = contents_of(&outputs);
    let folders = tree_of(&outputs);
    assert!(
        before.iter().any(|(p, _)| p.starts_with("images")),
        "the other project has images: {before:?}"
    );
    let root = sb.path().join("second");
    generate(
        &root,
        MonorepoOptions {
            services: 1,
            ..MonorepoOptions::default()
        },
    );
    std::fs::create_dir(root.join(".git")).expect("the repository marker");
    std::os::unix::fs::symlink(&outputs, root.join("target")).expect("committing a link");
    let leads = outputs.canonicalize().expect("the other target");
    for cmd in ["check", "graph", "clean", "build", "apply", "verify"] {
        let ran = run(&sb, &root, &[cmd]);
        assert_refused(&ran, "", "target-dir", cmd);
        let line = ran
            .stderr
            .lines()
            .find(|l| l.ends_with("[target-dir]"))
            .unwrap_or_default();
        assert!(
            line.contains(&root.join("target").display().to_string())
                && line.contains(&leads.display().to_string()),
            "{cmd}: names the link and where it leads: {line}"
        );
        assert!(
            ran.stderr.contains("remove the link") && ran.stderr.contains("--target-dir DIR"),
            "{cmd}: the hint: {}",
            ran.stderr
        );
        assert_eq!(
            contents_of(&outputs),
            before,
            "{cmd} changed the other target"
        );
        assert_eq!(tree_of(&outputs), folders, "{cmd} changed the other target");
    }
    // Given explicitly, it is the user's choice.
    let ran = run(&sb, &root, &["check", "--target-dir", "target"]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    // A link that stays inside the workspace is no link out.
    std::fs::remove_file(root.join("target")).expect("removing the link");
    std::fs::create_dir(root.join("out")).expect("a folder");
    std::os::unix::fs::symlink("out", root.join("target")).expect("a link inside");
    let ran = run(&sb, &root, &["check"]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
}

/// Every file and folder under `dir`, sorted.
fn tree_of(dir: &Path) -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = walk(dir);
    all.sort();
    all
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("listing a folder") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

#[test]
fn links_committed_under_the_target_dir_are_replaced_never_followed() {
    // A repository that commits a tagged `target/` (so scone takes it as its
    // own) with links to a folder of the user's where a build publishes,
    // prunes and stores.
    let (sb, root) = checkout();
    let victim = sb.path().join("victim");
    write(&victim.join("precious.txt"), "not scone's\n");
    write(&victim.join("svc-0000/precious.txt"), "not scone's\n");
    write(&victim.join("svc_0000/precious.txt"), "not scone's\n");
    write(&victim.join("ab/precious.txt"), "not scone's\n");
    let before = tree_of(&victim);
    let target = root.join("target");
    write(
        &target.join(".scone/CACHEDIR.TAG"),
        "Signature: 8a477f597d28d172789f06886806bc55\n",
    );
    std::fs::create_dir_all(target.join(".scone/actions")).expect("a folder");
    let links = [
        "images",
        "sbom",
        "policy",
        ".scone/blobs",
        ".scone/memo",
        ".scone/actions/ab",
    ];
    for link in links {
        std::os::unix::fs::symlink(&victim, target.join(link)).expect("planting a link");
    }
    for _ in 0..2 {
        let ran = run(&sb, &root, &["build"]);
        assert_eq!(ran.code, Some(0), "{}", ran.stderr);
        assert_eq!(
            tree_of(&victim),
            before,
            "a folder a link named was touched"
        );
    }
    for folder in ["images", "sbom", "policy", ".scone/blobs", ".scone/memo"] {
        let meta = std::fs::symlink_metadata(target.join(folder)).expect(folder);
        assert!(meta.is_dir(), "{folder}: a real folder of scone's now");
    }
    assert!(
        !names_in(&target.join("images")).is_empty(),
        "the images are published in target/"
    );
    // A link planted after a build, where `clean -p` removes a service's
    // outputs: the link goes, not what the folder it names holds.
    let images = target.join("images");
    std::fs::rename(&images, sb.path().join("images-moved")).expect("moving images");
    std::os::unix::fs::symlink(&victim, &images).expect("planting a link");
    let ran = run(&sb, &root, &["clean", "-p", "svc_0000"]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert_eq!(tree_of(&victim), before, "clean -p went through a link");
    // A link among the store's fan-out folders, which `clean --gc` lists.
    let fan = target.join(".scone/blobs/ff");
    std::fs::remove_dir_all(&fan).ok();
    std::os::unix::fs::symlink(&victim, &fan).expect("planting a link");
    let ran = run(&sb, &root, &["clean", "--gc"]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert_eq!(tree_of(&victim), before, "clean --gc went through a link");
    assert!(std::fs::symlink_metadata(&fan).is_err(), "the link is gone");
    let ran = run(&sb, &root, &["clean"]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert_eq!(tree_of(&victim), before, "clean went through a link");
}

/// Every file under `dir` with what it holds, sorted by path.
fn contents_of(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    tree_of(dir)
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).expect("reading an output");
            (p.strip_prefix(dir).expect("under dir").to_path_buf(), bytes)
        })
        .collect()
}

/// `cp -a from to`: a checkout as a clone, or an archive, brings it.
fn copy_tree(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("running cp");
    assert!(
        status.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
}

fn blake3_hex(path: &Path) -> String {
    let (digest, _) = scone::engine::stat::hash_file(path).expect("hashing a file");
    digest.to_hex().to_string()
}

#[test]
fn a_target_dir_from_elsewhere_is_never_taken_on_trust() {
    // The attacker builds the repository once with a file of theirs and once
    // as committed, then edits the action cache so that the committed
    // sources' copy step names the blob of theirs (same size), removes the
    // state (so the action cache is what a build consults) and commits
    // `target/`.
    let (attacker, repo) = checkout();
    let file = repo.join("services/svc-0000/lib/file-1.txt");
    let good = std::fs::read_to_string(&file).expect("the committed file");
    let evil = format!("X{}", &good[1..]);
    write(&file, &evil);
    let evil_digest = blake3_hex(&file);
    assert_eq!(run(&attacker, &repo, &["build"]).code, Some(0));
    write(&file, &good);
    let good_digest = blake3_hex(&file);
    assert_eq!(run(&attacker, &repo, &["build"]).code, Some(0));
    let scone_dir = repo.join("target/.scone");
    let mut edited = 0;
    for path in tree_of(&scone_dir.join("actions")) {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        if text.contains(&good_digest) {
            std::fs::write(&path, text.replace(&good_digest, &evil_digest)).expect("editing");
            edited += 1;
        }
    }
    assert!(edited > 0, "the copy step's record names the file's blob");
    for file in ["state", "records"] {
        std::fs::remove_file(scone_dir.join(file)).expect("removing the state");
    }

    // A user builds the checkout as it came, target/ included; another
    // builds the same sources from scratch. Their outputs are the same.
    let user = Sandbox::new();
    let checked_out = user.path().join("repo");
    copy_tree(&repo, &checked_out);
    let ran = run(&user, &checked_out, &["build"]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let scratch = Sandbox::new();
    let clean = scratch.path().join("repo");
    copy_tree(&repo, &clean);
    std::fs::remove_dir_all(clean.join("target")).expect("removing target/");
    let ran = run(&scratch, &clean, &["build"]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    for outputs in ["images", "enclave", "policy", "helm"] {
        assert!(
            contents_of(&checked_out.join("target").join(outputs))
                == contents_of(&clean.join("target").join(outputs)),
            "target/{outputs}: the committed cache's outputs were taken, not the sources'"
        );
    }

    // A copy the user made of their own build is still theirs: nothing runs.
    let copied = scratch.path().join("copied");
    copy_tree(&clean, &copied);
    let out = scratch
        .scone(&copied)
        .args(["build", "--message-format", "json"])
        .timeout(HANG_GUARD)
        .output()
        .expect("running scone");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("\"built\":0"),
        "a copy of one's own build is reused:\n{said}"
    );
}

#[test]
fn a_scone_toml_above_the_repository_is_not_used() {
    let (sb, root) = checkout();
    // A shared folder above the repository holds a scone.toml of someone else's.
    write(
        &sb.path().join("scone.toml"),
        "target-dir = \"repo/services\"\nabove = 1\n",
    );
    let ran = run(&sb, &root, &["check"]);
    assert_eq!(
        ran.code,
        Some(0),
        "the scone.toml above was read:\n{}",
        ran.stderr
    );
    let ran = run(
        &sb,
        &root.join("services"),
        &["check", "-f", "svc-0000/service.yml"],
    );
    assert_eq!(
        ran.code,
        Some(0),
        "the scone.toml above was read:\n{}",
        ran.stderr
    );
    // Inside the repository, the root's scone.toml is found from a subfolder.
    write(&root.join("scone.toml"), "inside = 1\n");
    let ran = run(
        &sb,
        &root.join("services"),
        &["check", "-f", "svc-0000/service.yml"],
    );
    assert_eq!(ran.code, Some(2), "{}", ran.stderr);
    assert!(ran.stderr.contains("inside"), "{}", ran.stderr);
    assert!(!ran.stderr.contains("above"), "{}", ran.stderr);
    // Outside any repository only the first file's folder is looked at.
    std::fs::remove_dir(root.join(".git")).expect("removing the marker");
    std::fs::remove_file(root.join("scone.toml")).expect("removing scone.toml");
    let ran = run(&sb, &root, &["check", "-f", "mesh.yml"]);
    assert_eq!(
        ran.code,
        Some(0),
        "a folder above the file was read:\n{}",
        ran.stderr
    );
}

// ---------------------------------------------------------------------------
// Item 2: paths a manifest names stay in the repository.

#[test]
fn manifest_paths_outside_the_repository_need_the_allow_list() {
    let (sb, root) = checkout();
    let svc = root.join(SVC0);
    // A host folder with something to steal, usable as a rootfs.
    let host = sb.path().join("host");
    write(&host.join(".ssh/id_rsa"), "PRIVATE KEY\n");
    let app = std::fs::read(root.join("base/usr/bin/app")).expect("the base binary");
    write(&host.join("usr/bin/app"), "");
    std::fs::write(host.join("usr/bin/app"), app).expect("copying the binary");
    std::os::unix::fs::symlink(&host, root.join("host-link")).expect("a link");
    let from_line = line_of(&svc, "from:");
    let at = format!("{SVC0}:{from_line}:");
    for (from, case) in [
        (format!("dir:{}", host.display()), "an absolute dir:"),
        (
            "dir:../../../host".to_string(),
            "a relative dir: escaping the repo",
        ),
        (
            "dir:../../host-link".to_string(),
            "a link in the repo to a host folder",
        ),
        (format!("oci:{}:v1", host.display()), "an oci: layout"),
    ] {
        let text = std::fs::read_to_string(&svc).unwrap();
        let changed = text.replace("from: \"dir:../../base\"", &format!("from: \"{from}\""));
        std::fs::write(&svc, &changed).unwrap();
        for cmd in ["check", "build"] {
            let ran = run(&sb, &root, &[cmd]);
            assert_refused(&ran, &at, "outside-workspace", &format!("{cmd}: {case}"));
        }
        std::fs::write(&svc, text).unwrap();
    }
    assert!(
        !root.join("target/images").exists(),
        "a refused build wrote images"
    );

    // A signing key outside the repository.
    let key = sb.path().join("keys/enclave.pem");
    write(&key, "");
    std::fs::copy(support::sig1_key(), &key).expect("the test key");
    edit(
        &svc,
        "  copy:\n",
        &format!("  signature:\n    key: \"{}\"\n  copy:\n", key.display()),
    );
    let at = format!("{SVC0}:{}:", line_of(&svc, "key:"));
    assert_refused(
        &run(&sb, &root, &["check"]),
        &at,
        "outside-workspace",
        "key",
    );
    edit(
        &svc,
        &format!("    key: \"{}\"\n", key.display()),
        "    key: \"../../../keys/enclave.pem\"\n",
    );
    assert_refused(
        &run(&sb, &root, &["check"]),
        &at,
        "outside-workspace",
        "../ key",
    );

    // A Meshfile naming a manifest outside the repository.
    let outside = sb.path().join("elsewhere/service.yml");
    write(
        &outside,
        &std::fs::read_to_string(root.join("services/svc-0001/service.yml")).unwrap(),
    );
    let mesh = root.join("mesh.yml");
    edit(
        &mesh,
        "manifest: services/svc-0001/service.yml",
        "manifest: ../elsewhere/service.yml",
    );
    let at = format!("mesh.yml:{}:", line_of(&mesh, "../elsewhere"));
    assert_refused(
        &run(&sb, &root, &["check"]),
        &at,
        "outside-workspace",
        "manifest:",
    );
    edit(
        &mesh,
        "manifest: ../elsewhere/service.yml",
        "manifest: services/svc-0001/service.yml",
    );

    // `[paths] allow` lets the repository name a folder outside, and it builds.
    write(
        &root.join("scone.toml"),
        "[paths]\nallow = [\"../host\", \"../keys\"]\n",
    );
    edit(
        &svc,
        "from: \"dir:../../base\"",
        &format!("from: \"dir:{}\"", host.display()),
    );
    let ran = run(&sb, &root, &["check"]);
    assert_eq!(
        ran.code,
        Some(0),
        "allow-listed paths refused:\n{}",
        ran.stderr
    );
    let ran = run(&sb, &root, &["build"]);
    assert_eq!(
        ran.code,
        Some(0),
        "allow-listed base did not build:\n{}",
        ran.stderr
    );
}

#[test]
fn a_dir_base_that_is_the_host_root_is_refused() {
    // `scone.toml` may name any folder as a base, but never `/` itself (all of
    // this machine's files, `/etc/shadow` and `/proc` among them), however it
    // is spelt; nor may a manifest, even with `/` allow-listed. It was taken
    // (the target dir's overlap refused it, naming the target dir).
    let (sb, root) = checkout();
    let config = root.join("scone.toml");
    std::os::unix::fs::symlink("/", root.join("root-link")).expect("a link");
    for (base, case) in [
        ("dir:/", "`/`"),
        ("dir:/etc/..", "`/etc/..`"),
        ("dir:root-link", "a link in the repository to `/`"),
    ] {
        write(&config, &format!("[base]\npython = \"{base}\"\n"));
        for cmd in ["check", "build"] {
            let ran = run(&sb, &root, &[cmd]);
            assert_refused(&ran, "scone.toml:2:1:", "config", &format!("{cmd}: {case}"));
            assert!(
                ran.stderr
                    .contains("is the root folder `/` of this machine")
                    && ran
                        .stderr
                        .contains("help: a `dir:` base is the image's root")
                    && !ran.stderr.contains("[target-dir]"),
                "{cmd}: {case}: the message names `/`, with a hint:\n{}",
                ran.stderr
            );
        }
    }
    write(&config, "[paths]\nallow = [\"/\"]\n");
    let svc = root.join(SVC0);
    edit(&svc, "from: \"dir:../../base\"", "from: \"dir:/\"");
    let at = format!("{SVC0}:{}:", line_of(&svc, "from:"));
    assert_refused(
        &run(&sb, &root, &["check"]),
        &at,
        "invalid-value",
        "build.from",
    );
    assert!(
        !root.join("target/images").exists(),
        "a refused build wrote images"
    );
}

#[test]
fn a_dir_base_with_files_not_everyone_may_read_is_warned_of() {
    // A base folder's modes go into the layer, but its bytes go to whoever
    // pulls the image: a file without o+r (a key, `/etc/shadow`) is named.
    // Tests run as root: the file is told by its mode, not by a failed read.
    use std::os::unix::fs::PermissionsExt;
    let (sb, root) = checkout();
    let ran = run(&sb, &root, &["build"]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert!(
        !ran.stderr.contains("not everyone may read"),
        "{}",
        ran.stderr
    );
    let shadow = root.join("base/etc/shadow");
    write(&shadow, "root:$6$hash:19000::::::\n");
    std::fs::set_permissions(&shadow, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let ran = run(&sb, &root, &["build"]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let warning = ran
        .stderr
        .lines()
        .find(|l| l.starts_with("warning: base dir:"))
        .unwrap_or_else(|| panic!("no warning of the base:\n{}", ran.stderr));
    assert!(
        warning.contains("/base holds 1 file not everyone may read (no o+r: etc/shadow)"),
        "{warning}"
    );
    // In JSON too, as a diagnostic (the base changed again: the step runs).
    std::fs::set_permissions(&shadow, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let out = sb
        .scone(&root)
        .args(["build", "--message-format", "json"])
        .timeout(HANG_GUARD)
        .output()
        .expect("running scone");
    let warned = support::messages(&out.stdout).iter().any(|m| {
        m["reason"] == "diagnostic"
            && m["level"] == "warning"
            && m["message"]
                .as_str()
                .is_some_and(|t| t.contains("not everyone may read (no o+r: etc/shadow)"))
    });
    assert!(warned, "{}", String::from_utf8_lossy(&out.stdout));
}

// ---------------------------------------------------------------------------
// Item 3: a Meshfile hands a service only its own secrets.

#[test]
fn a_mesh_value_cannot_hand_a_service_another_services_secret() {
    let (sb, root) = checkout();
    let mesh = root.join("mesh.yml");
    // svc_0001 declares LOG_LEVEL global; secret_0000 is svc_0000's local secret.
    let original = std::fs::read_to_string(&mesh).unwrap();
    for (value, case) in [
        ("\"$$SCONE::secret_0000$$\"", "another service's secret"),
        ("\"level=$$SCONE::nobody_declares\"", "an undeclared secret"),
    ] {
        edit(&mesh, "    value: info", &format!("    value: {value}"));
        let at = format!("mesh.yml:{}:", line_of(&mesh, "$$SCONE::"));
        let ran = run(&sb, &root, &["check"]);
        assert_refused(&ran, &at, "undeclared-secret", case);
        assert_refused(&run(&sb, &root, &["build"]), &at, "undeclared-secret", case);
        std::fs::write(&mesh, &original).unwrap();
    }
    // The per-service form, aimed at one service.
    edit(
        &mesh,
        "env:\n  - name: LOG_LEVEL\n    value: info\n",
        "env:\n  - name: LOG_LEVEL\n    value: info\n  - service: svc_0001\n    env:\n      - name: LOG_LEVEL\n        value: \"$$SCONE::secret_0000$$\"\n",
    );
    let at = format!("mesh.yml:{}:", line_of(&mesh, "$$SCONE::"));
    assert_refused(
        &run(&sb, &root, &["check"]),
        &at,
        "undeclared-secret",
        "per-service",
    );
    // Nor the service's own local secret: the Meshfile may route only what the
    // service declares global or imports (here into LOG_LEVEL, which a
    // program may well print).
    std::fs::write(&mesh, &original).unwrap();
    edit(
        &mesh,
        "env:\n  - name: LOG_LEVEL\n    value: info\n",
        "env:\n  - name: LOG_LEVEL\n    value: info\n  - service: svc_0000\n    env:\n      - name: LOG_LEVEL\n        value: \"level $$SCONE::secret_0000$$\"\n",
    );
    let at = format!("mesh.yml:{}:", line_of(&mesh, "$$SCONE::"));
    for command in ["check", "build"] {
        let ran = run(&sb, &root, &[command]);
        assert_refused(&ran, &at, "local-override", "its own local secret");
        assert!(
            ran.stderr
                .contains("declare `secret_0000` under `secrets.global` in service.yml"),
            "{}",
            ran.stderr
        );
    }
    // A service that imports the secret may be given it: svc_0000 exports it.
    std::fs::write(&mesh, &original).unwrap();
    edit(
        &root.join(SVC0),
        "  local:\n    - name: secret_0000",
        "  global:\n    - name: secret_0000",
    );
    edit(
        &root.join("services/svc-0001/service.yml"),
        "secrets:\n",
        "secrets:\n  import: [secret_0000]\n",
    );
    edit(
        &mesh,
        "    value: info",
        "    value: \"$$SCONE::secret_0000$$\"",
    );
    let ran = run(&sb, &root, &["check"]);
    assert_eq!(
        ran.code,
        Some(0),
        "an imported secret was refused:\n{}",
        ran.stderr
    );
}

/// A mesh is one CAS session, holding one secret of a name: a service author
/// who declares a local secret under another service's local secret name would
/// be given its value. `check` and `build` refuse it at the second declaration;
/// two globals of one name stay one shared secret, as declared.
#[test]
fn a_service_cannot_read_another_services_local_secret_by_naming_it() {
    let (sb, root) = checkout();
    let svc1 = root.join("services/svc-0001/service.yml");
    let original = std::fs::read_to_string(&svc1).unwrap();
    // svc_0001 declares (and reads) a local secret named as svc_0000's.
    std::fs::write(&svc1, original.replace("secret_0001", "secret_0000")).unwrap();
    let at = format!(
        "services/svc-0001/service.yml:{}:",
        line_of(&svc1, "- name: secret_0000")
    );
    for command in ["check", "build"] {
        let ran = run(&sb, &root, &[command]);
        assert_refused(&ran, &at, "duplicate-secret", command);
        for named in [
            "service `svc_0000`",
            "service `svc_0001`",
            "services/svc-0000/service.yml:",
            "local secrets are per service",
        ] {
            assert!(
                ran.stderr.contains(named),
                "{command}: no {named}:\n{}",
                ran.stderr
            );
        }
    }
    assert!(
        !root.join("target/policy").exists(),
        "a refused mesh wrote a policy"
    );
    // A local named as another service's global would read that service's
    // exported secret without importing it; the other way round every
    // importer would read the local one.
    edit(
        &root.join(SVC0),
        "  local:\n    - name: secret_0000",
        "  global:\n    - name: secret_0000",
    );
    assert_refused(
        &run(&sb, &root, &["check"]),
        &at,
        "duplicate-secret",
        "a local named as another's global",
    );
    // Two globals of one name are one secret both declare to share.
    std::fs::write(
        &svc1,
        original
            .replace("secret_0001", "secret_0000")
            .replace("secrets:\n  local:", "secrets:\n  global:"),
    )
    .unwrap();
    let ran = run(&sb, &root, &["check"]);
    assert_eq!(
        ran.code,
        Some(0),
        "two globals were refused:\n{}",
        ran.stderr
    );
    // ... declared alike: one of another size would get the first one's.
    std::fs::write(
        &svc1,
        original
            .replace("secret_0001", "secret_0000")
            .replace("secrets:\n  local:", "secrets:\n  global:")
            .replace("size: 16", "size: 32"),
    )
    .unwrap();
    let ran = run(&sb, &root, &["check"]);
    assert_refused(
        &ran,
        &at,
        "duplicate-secret",
        "two globals declared otherwise",
    );
    for named in ["declared otherwise", "size 32", "size 16"] {
        assert!(ran.stderr.contains(named), "no {named}:\n{}", ran.stderr);
    }
}

// ---------------------------------------------------------------------------
// Item 4: Meshfile values are data, never template source.

/// The environment the session at `path` gives service `name`, as pairs.
fn session_env(path: &Path, name: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).expect("the session");
    let doc: serde_json::Value = serde_saphyr::from_str(&text).expect("the session is YAML");
    let service = doc["services"]
        .as_array()
        .expect("services")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no service {name} in the session"));
    service["environment"]
        .as_object()
        .expect("an environment")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

#[test]
fn mesh_values_are_data_not_template_source() {
    let (sb, root) = checkout();
    let svc = root.join(SVC0);
    // The service author uses the mesh's LOG_LEVEL in one of their locals.
    edit(
        &svc,
        "    - name: SERVICE_ID\n",
        "    - name: GREETING\n      value: \"level {{LOG_LEVEL}}\"\n    - name: SERVICE_ID\n",
    );
    // The Meshfile author tries to add a local of their own through it.
    let injected = "x\"\n    - name: SCONE_ALLOW_DLOPEN\n      value: \"1";
    let mesh = root.join("mesh.yml");
    edit(
        &mesh,
        "    value: info",
        &format!("    value: {}", serde_json::to_string(injected).unwrap()),
    );
    let ran = run(&sb, &root, &["build"]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let env = session_env(&root.join("target/policy/mono-0.yaml"), "svc_0000");
    let mut names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["GREETING", "LOG_LEVEL", "SERVICE_ID", "SERVICE_SECRET"],
        "the mesh changed the service's locals: {env:?}"
    );
    let value = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert_eq!(
        value("GREETING"),
        Some(format!("level {injected}")),
        "not kept as data"
    );
    assert_eq!(value("LOG_LEVEL").as_deref(), Some(injected));

    // Raw output would paste the value as template source: refused.
    edit(&svc, "\"level {{LOG_LEVEL}}\"", "\"level {{{LOG_LEVEL}}}\"");
    let at = format!("{SVC0}:{}:", line_of(&svc, "GREETING") + 1);
    assert_refused(&run(&sb, &root, &["check"]), &at, "template", "{{{x}}}");
    edit(
        &svc,
        "\"level {{{LOG_LEVEL}}}\"",
        "\"level {{&LOG_LEVEL}}\"",
    );
    assert_refused(&run(&sb, &root, &["check"]), &at, "template", "{{&x}}");
}

// ---------------------------------------------------------------------------
// Item 7: resource exhaustion.

#[test]
fn special_files_are_refused_before_they_are_opened() {
    let (sb, root) = checkout();
    let svc = root.join(SVC0);
    let copy_line = line_of(&svc, "- main.cfg");

    // A FIFO named in `copy:`.
    support::mkfifo(&root.join("services/svc-0000/pipe"));
    edit(&svc, "    - lib\n", "    - lib\n    - pipe\n");
    let at = format!("{SVC0}:{}:", copy_line + 2);
    for cmd in ["check", "build"] {
        assert_refused(
            &run(&sb, &root, &[cmd]),
            &at,
            "special-file",
            &format!("{cmd}: FIFO in copy"),
        );
    }
    edit(&svc, "    - lib\n    - pipe\n", "    - lib\n");
    std::fs::remove_file(root.join("services/svc-0000/pipe")).unwrap();

    // A FIFO inside a copied folder.
    let at = format!("{SVC0}:{}:", copy_line + 1);
    support::mkfifo(&root.join("services/svc-0000/lib/pipe"));
    for cmd in ["check", "build"] {
        assert_refused(
            &run(&sb, &root, &[cmd]),
            &at,
            "special-file",
            &format!("{cmd}: FIFO in a copied folder"),
        );
    }
    std::fs::remove_file(root.join("services/svc-0000/lib/pipe")).unwrap();

    // A FIFO and a link to /dev/zero as `-f`, and as a Meshfile's `manifest:`.
    support::mkfifo(&root.join("pipe.yml"));
    std::os::unix::fs::symlink("/dev/zero", root.join("zero.yml")).unwrap();
    for file in ["pipe.yml", "zero.yml"] {
        let ran = run(&sb, &root, &["check", "-f", file]);
        assert_refused(
            &ran,
            &format!("{file}:"),
            "special-file",
            &format!("-f {file}"),
        );
    }
    let mesh = root.join("mesh.yml");
    // (The link leads out of the repository: that is refused first.)
    for (file, code) in [
        ("pipe.yml", "special-file"),
        ("zero.yml", "outside-workspace"),
    ] {
        let text = std::fs::read_to_string(&mesh).unwrap();
        edit(
            &mesh,
            "manifest: services/svc-0001/service.yml",
            &format!("manifest: {file}"),
        );
        let at = format!("mesh.yml:{}:", line_of(&mesh, &format!("manifest: {file}")));
        assert_refused(
            &run(&sb, &root, &["check"]),
            &at,
            code,
            &format!("manifest: {file}"),
        );
        std::fs::write(&mesh, text).unwrap();
    }
    // A FIFO as the signing key of a manifest.
    support::mkfifo(&root.join("services/svc-0000/key.pem"));
    edit(
        &svc,
        "  copy:\n",
        "  signature:\n    key: key.pem\n  copy:\n",
    );
    let at = format!("{SVC0}:{}:", line_of(&svc, "key: key.pem"));
    assert_refused(
        &run(&sb, &root, &["check"]),
        &at,
        "special-file",
        "FIFO key",
    );
    edit(&svc, "  signature:\n    key: key.pem\n", "");
    // A FIFO as scone.toml, and one as the key scone.toml names.
    support::mkfifo(&root.join("scone.toml"));
    assert_refused(
        &run(&sb, &root, &["check"]),
        "scone.toml:",
        "special-file",
        "FIFO scone.toml",
    );
    std::fs::remove_file(root.join("scone.toml")).unwrap();
    write(
        &root.join("scone.toml"),
        "[signing]\nkey = \"services/svc-0000/key.pem\"\n",
    );
    assert_refused(
        &run(&sb, &root, &["check"]),
        "scone.toml:",
        "special-file",
        "FIFO [signing] key",
    );
    std::fs::remove_file(root.join("scone.toml")).unwrap();

    // A manifest bigger than any manifest is, read no further than the bound.
    let big = root.join("big.yml");
    std::fs::File::create(&big)
        .and_then(|f| f.set_len(64 << 30))
        .expect("a sparse file");
    assert_refused(
        &run(&sb, &root, &["check", "-f", "big.yml"]),
        "big.yml:",
        "io",
        "64 GiB manifest",
    );
    std::fs::remove_file(&big).unwrap();

    // Nothing was built from any of it; the workspace still builds.
    let ran = run(&sb, &root, &["build"]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    // A FIFO in a `dir:` base (a rootfs may hold special files) is never
    // opened and stays out of the layer: the build ends.
    support::mkfifo(&root.join("base/pipe"));
    let ran = run(&sb, &root, &["build"]);
    assert_eq!(ran.code, Some(0), "FIFO in a dir: base:\n{}", ran.stderr);
    std::fs::remove_file(root.join("base/pipe")).unwrap();
    // A FIFO that appears in a copied folder after a build (the incremental
    // path does not load the manifests again) is never opened: the build ends.
    support::mkfifo(&root.join("services/svc-0000/lib/late-pipe"));
    let ran = run(&sb, &root, &["build"]);
    assert!(ran.code.is_some(), "the build hung on a FIFO");
    assert_refused(
        &run(&sb, &root, &["check"]),
        &format!("{SVC0}:{}:", copy_line + 1),
        "special-file",
        "late FIFO",
    );
}

#[test]
fn a_key_from_the_environment_that_is_no_file_is_refused_before_any_step() {
    // `SCONE_SIGNING_KEY` / `SCONE_PROVENANCE_KEY` naming a folder or a FIFO:
    // refused with the variable's name before anything is built (it was a
    // sign step's "is not a regular file, folder or symlink" of a folder,
    // after the images), and a FIFO is never opened.
    let (sb, root) = checkout();
    let folder = sb.path().join("keys");
    std::fs::create_dir(&folder).unwrap();
    let pipe = sb.path().join("key-pipe");
    support::mkfifo(&pipe);
    for (var, path, kind) in [
        ("SCONE_SIGNING_KEY", &folder, "a folder"),
        ("SCONE_SIGNING_KEY", &pipe, "a FIFO"),
        ("SCONE_PROVENANCE_KEY", &folder, "a folder"),
    ] {
        let out = sb
            .scone(&root)
            .arg("build")
            .env(var, path)
            .timeout(HANG_GUARD)
            .output()
            .expect("running scone");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{var}={}: {stderr}",
            path.display()
        );
        let said = format!("{} ({var}) is {kind}, not a key file", path.display());
        assert!(stderr.contains(&said), "{var}: want `{said}` in:\n{stderr}");
        assert!(
            !root.join("target/images").exists(),
            "{var}: built before refusing"
        );
    }
    let ran = run(&sb, &root, &["build"]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
}

#[test]
fn a_huge_jobs_count_does_not_make_a_thread_a_job() {
    // `-j 100000`: a pool of 100,000 threads took a one-service build twelve
    // minutes and 1 GB; the workers are bounded by the steps (and 256).
    let (sb, root) = checkout();
    let ran = run(&sb, &root, &["build", "-j", "100000"]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    std::fs::write(root.join("services/svc-0000/lib/file-0.txt"), "edited\n").unwrap();
    let ran = run(&sb, &root, &["build", "-j", "100000"]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
}

#[test]
fn oversized_enclaves_are_refused_by_check() {
    let (sb, root) = checkout();
    let svc = root.join(SVC0);
    let original = std::fs::read_to_string(&svc).unwrap();
    for (locals, needle, case) in [
        (
            "    - name: SCONE_THREADS\n      value: \"4096\"\n    - name: SCONE_STACK\n      value: 1G\n",
            "value: 1G",
            "4096 threads of 1 GiB stack",
        ),
        ("    - name: SCONE_HEAP\n      value: 65G\n", "value: 65G", "a 65 GiB heap"),
        ("    - name: SCONE_HEAP\n      value: lots\n", "value: lots", "no size at all"),
        ("    - name: SCONE_THREADS\n      value: \"0\"\n", "value: \"0\"", "no thread"),
    ] {
        edit(&svc, "  local:\n", &format!("  local:\n{locals}"));
        let at = format!("{SVC0}:{}:", line_of(&svc, needle));
        assert_refused(&run(&sb, &root, &["check"]), &at, "invalid-value", case);
        std::fs::write(&svc, &original).unwrap();
    }
    // At the bound it is accepted.
    edit(
        &svc,
        "  local:\n",
        "  local:\n    - name: SCONE_THREADS\n      value: \"16\"\n    - name: SCONE_HEAP\n      value: 1G\n",
    );
    let ran = run(&sb, &root, &["check"]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
}

// ---------------------------------------------------------------------------
// Item 9: values that used to pass `check` and fail late (or never).

#[test]
fn invalid_values_are_refused_by_check() {
    let (sb, root) = checkout();
    let svc = root.join(SVC0);
    let mesh = root.join("mesh.yml");
    let try_case = |file: &Path, from: &str, to: &str, needle: &str, code: &str, case: &str| {
        let original = std::fs::read_to_string(file).unwrap();
        edit(file, from, to);
        let rel = file.strip_prefix(&root).unwrap().display().to_string();
        let at = format!("{rel}:{}:", line_of(file, needle));
        assert_refused(&run(&sb, &root, &["check"]), &at, code, case);
        std::fs::write(file, original).unwrap();
    };
    // Control characters and noncharacters in env values (the session would
    // not be YAML).
    try_case(
        &svc,
        "value: \"svc_0000\"",
        "value: \"svc\\u0086\"",
        "u0086",
        "invalid-value",
        "C1 in a local",
    );
    try_case(
        &mesh,
        "value: info",
        "value: \"in\\uFFFEfo\"",
        "FFFE",
        "invalid-value",
        "U+FFFE in a mesh value",
    );
    try_case(
        &mesh,
        "value: info",
        "value: \"in\\u001bfo\"",
        "001b",
        "invalid-value",
        "ESC in a mesh value",
    );
    try_case(
        &svc,
        "command: \"app main.cfg\"",
        "command: \"app\\u009bmain.cfg\"",
        "command:",
        "invalid-value",
        "C1 in the command",
    );
    // Names that collide once made Kubernetes names.
    try_case(
        &mesh,
        "  - name: svc_0001\n",
        "  - name: svc-0000\n",
        "name: svc-0000",
        "duplicate-service",
        "svc_0000 and svc-0000",
    );
    try_case(
        &mesh,
        "  - name: svc_0001\n",
        "  - name: SVC_0000\n",
        "name: SVC_0000",
        "duplicate-service",
        "svc_0000 and SVC_0000",
    );
    // Port names of one service that are one Kubernetes port name.
    let original = std::fs::read_to_string(&svc).unwrap();
    std::fs::write(
        &svc,
        format!("{original}ports:\n  - {{ name: web_api, port: 80 }}\n  - {{ name: web-api, port: 81 }}\n"),
    )
    .unwrap();
    let at = format!("{SVC0}:{}:", line_of(&svc, "web-api"));
    assert_refused(
        &run(&sb, &root, &["check"]),
        &at,
        "invalid-value",
        "port names",
    );
    std::fs::write(&svc, &original).unwrap();
    // Two meshes whose namespaces are one Kubernetes name (one session and one
    // chart would replace the other).
    let other = root.join("other.yml");
    let text = std::fs::read_to_string(&mesh).unwrap();
    write(
        &other,
        &text.replace("namespace: mono-0", "namespace: Mono-0"),
    );
    let ran = run(&sb, &root, &["check", "-f", "mesh.yml", "-f", "other.yml"]);
    let at = format!("other.yml:{}:", line_of(&other, "Mono-0"));
    assert_refused(&ran, &at, "duplicate-service", "namespaces");
    std::fs::remove_file(&other).unwrap();
    // A cas_url that is no CAS address.
    for url in [
        "file:///etc/passwd",
        "javascript:alert(1)",
        "https://user:secret@cas.example.com",
        "http://cas.example.com",
        "cas.example.com/path",
        "cas.example.com:99999",
        "cas example.com",
        "cas.example.com\\\"\\ninjected: 1",
    ] {
        try_case(
            &mesh,
            "cas_url: \"127.0.0.1:8081\"",
            &format!("cas_url: \"{url}\""),
            "cas_url",
            "invalid-value",
            url,
        );
    }
    // A build.to that is no image reference.
    for to in [
        "127.0.0.1:5000/Mono/svc:latest",
        "127.0.0.1:5000/mono/svc:bad/tag!",
        "127.0.0.1:5000/mono/svc@sha256:1234",
        "ex ample.com/a:1",
    ] {
        try_case(
            &svc,
            "to: \"127.0.0.1:5000/mono/svc-0000:latest\"",
            &format!("to: \"{to}\""),
            "to:",
            "invalid-value",
            to,
        );
    }
    // A CAS listed twice.
    try_case(
        &mesh,
        "    cas_url: \"127.0.0.1:8081\"\n",
        "    cas_url: \"127.0.0.1:8081\"\n  - name: cas # again\n    cas_url: other.example.com\n",
        "# again",
        "invalid-value",
        "a second cas entry of the same name",
    );
    // Several distinct CAS entries are fine.
    edit(
        &mesh,
        "    cas_url: \"127.0.0.1:8081\"\n",
        "    cas_url: \"127.0.0.1:8081\"\n  - name: backup\n    cas_url: \"https://backup.example.com:8443\"\n",
    );
    let ran = run(&sb, &root, &["check"]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
}
