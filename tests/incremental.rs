//! The incremental path through the real binary (issue 9): after an edit to
//! files only some steps read, the steps nothing they read changed are reused
//! without being checked — and the outputs are always exactly those of a
//! build from scratch.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use support::monorepo::{age_tree, generate, MonorepoOptions};
use support::{finished, step_statuses, tree, Sandbox};

const SERVICES: usize = 6;
/// 6 services × 6 steps + base, packages, policy, chart.
const STEPS: u64 = SERVICES as u64 * 6 + 4;
/// What one service's edit rebuilds: its six steps, its mesh's policy and chart.
const CHAIN: u64 = 8;

fn built(msgs: &[serde_json::Value]) -> BTreeSet<String> {
    step_statuses(msgs)
        .into_iter()
        .filter(|(_, _, s)| s == "built")
        .map(|(k, u, _)| format!("{k}:{u}"))
        .collect()
}

fn chain(unit: &str) -> BTreeSet<String> {
    ["copy", "layer", "image", "sign", "sbom", "provenance"]
        .iter()
        .map(|k| format!("{k}:{unit}"))
        .chain(["policy:mono-0".to_string(), "chart:mono-0".to_string()])
        .collect()
}

fn repo() -> (Sandbox, PathBuf) {
    let sb = Sandbox::new();
    let root = sb.path().join("repo");
    generate(
        &root,
        MonorepoOptions {
            services: SERVICES,
            ..MonorepoOptions::default()
        },
    );
    age_tree(&root);
    (sb, root)
}

/// What a build published: `target/` (without the store) and `scone.lock`.
/// The MRSIGNER every enclave of the build was signed with.
fn signers(root: &Path) -> BTreeSet<String> {
    std::fs::read_dir(root.join("target/enclave"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path().join("mrsigner")).unwrap())
        .map(|s| s.trim().to_string())
        .collect()
}

#[test]
fn a_signing_key_rotated_behind_its_links_signs_the_next_build() {
    use scone::sgx::keys::SigningKey;
    let (sb, root) = repo();
    // A Kubernetes Secret mount: enclave.pem -> ..data/enclave.pem, and
    // ..data -> the current version's folder, swapped at each rotation.
    let secret = sb.path().join("secret");
    for version in ["..v1", "..v2"] {
        std::fs::create_dir_all(secret.join(version)).unwrap();
    }
    std::fs::copy(support::sig1_key(), secret.join("..v1/enclave.pem")).unwrap();
    let second = SigningKey::generate_at(&secret.join("..v2/enclave.pem")).unwrap();
    let first = SigningKey::load(&support::sig1_key()).unwrap();
    std::os::unix::fs::symlink("..v1", secret.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/enclave.pem", secret.join("enclave.pem")).unwrap();
    let key = secret.join("enclave.pem");
    let build_with = |key: &Path| {
        let out = sb
            .scone(&root)
            .env("SCONE_SIGNING_KEY", key)
            .args(["build", "-f", "mesh.yml", "-q"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        signers(&root)
    };
    let build = || build_with(&key);
    let one = |key: &SigningKey| BTreeSet::from([hex::encode(key.mrsigner())]);
    assert_eq!(build(), one(&first));
    // Rotated as kubelet does: a new link renamed over `..data`.
    std::os::unix::fs::symlink("..v2", secret.join("..data.tmp")).unwrap();
    std::fs::rename(secret.join("..data.tmp"), secret.join("..data")).unwrap();
    assert_eq!(build(), one(&second), "the rotated key signs");
    // The file behind the links replaced in place.
    std::fs::copy(support::sig1_key(), secret.join("..v2/enclave.pem")).unwrap();
    assert_eq!(build(), one(&first), "the key's new content signs");
    // A link straight to a file (`~/.config/scone/key.pem -> keys/a.pem`):
    // followed to the file itself (it was once taken for `keys/a.pem/`, a
    // folder, and every sign step failed), and re-pointed, it signs anew.
    let third = SigningKey::generate_at(&secret.join("third.pem")).unwrap();
    let direct = secret.join("direct.pem");
    std::os::unix::fs::symlink("third.pem", &direct).unwrap();
    assert_eq!(build_with(&direct), one(&third), "a direct link signs");
    std::fs::remove_file(&direct).unwrap();
    std::os::unix::fs::symlink("..v1/enclave.pem", &direct).unwrap();
    assert_eq!(
        build_with(&direct),
        one(&first),
        "the link re-pointed signs"
    );
}

fn outputs(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = tree(&root.join("target"));
    out.insert(
        "scone.lock".into(),
        std::fs::read(root.join("scone.lock")).unwrap(),
    );
    out
}

/// The outputs of a build from scratch of a copy of `root` (sources only).
fn from_scratch(sb: &Sandbox, root: &Path, n: usize) -> BTreeMap<String, Vec<u8>> {
    let copy = sb.path().join(format!("scratch-{n}"));
    for entry in walkdir::WalkDir::new(root) {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(root).unwrap();
        if rel.starts_with("target") || rel == Path::new("scone.lock") {
            continue;
        }
        let dest = copy.join(rel);
        if entry.file_type().is_dir() {
            // With its modes: a `dir:` base's layer keeps them.
            std::fs::create_dir_all(&dest).unwrap();
            let mode = entry.metadata().unwrap().permissions();
            std::fs::set_permissions(&dest, mode).unwrap();
        } else if entry.file_type().is_symlink() {
            let target = std::fs::read_link(entry.path()).unwrap();
            std::os::unix::fs::symlink(target, &dest).unwrap();
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
    let msgs = sb.build_json(&copy, &[]);
    assert_eq!(finished(&msgs)["reused"], 0);
    outputs(&copy)
}

/// Appends to a file and dates it in the past, as an edit made a while
/// before the build is (one made within the racy window of the build's start
/// is rightly not recorded for the fast paths: the next build is a full one).
fn edit(path: &Path, text: &str) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes.extend_from_slice(text.as_bytes());
    std::fs::write(path, bytes).unwrap();
    let past = filetime::FileTime::from_unix_time(1_600_000_100, 0);
    filetime::set_file_mtime(path, past).unwrap();
}

/// A build with `-v` (which does not change the build's key): its messages,
/// and whether it planned as the last build did, without loading.
fn build_verbose(sb: &Sandbox, root: &Path) -> (Vec<serde_json::Value>, bool) {
    let out = sb
        .scone(root)
        .args(["build", "-f", "mesh.yml", "-v", "--message-format", "json"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    (
        support::messages(&out.stdout),
        err.contains("as the last build (its load holds)"),
    )
}

#[test]
fn edits_rebuild_their_chain_reuse_the_rest_and_equal_a_build_from_scratch() {
    let (sb, root) = repo();
    let first = sb.build_json(&root, &[]);
    assert_eq!(finished(&first)["built"], STEPS);
    let file = root.join("services/svc-0003/lib/file-1.txt");
    let original = std::fs::read(&file).unwrap();

    edit(&file, "one more line\n");
    let (msgs, kept) = build_verbose(&sb, &root);
    assert!(
        kept,
        "a dirty build whose load holds plans as the last one did"
    );
    let done = finished(&msgs);
    assert_eq!(done["fast_path"], false);
    assert_eq!(built(&msgs), chain("svc_0003"));
    assert_eq!(
        done["reused"],
        STEPS - CHAIN,
        "the other services and the base were reused unchecked"
    );
    assert_eq!(
        step_statuses(&msgs).len() as u64,
        STEPS,
        "every step reported"
    );
    assert_eq!(outputs(&root), from_scratch(&sb, &root, 1));

    // A second edit elsewhere: the first service's new result is carried on.
    edit(&root.join("services/svc-0005/main.cfg"), "x");
    let msgs = sb.build_json(&root, &[]);
    assert_eq!(built(&msgs), chain("svc_0005"));
    assert_eq!(
        finished(&msgs)["reused"],
        STEPS - chain("svc_0004").len() as u64
    );
    assert_eq!(outputs(&root), from_scratch(&sb, &root, 2));

    // Back to the original bytes: those results are still in the action cache.
    std::fs::write(&file, &original).unwrap();
    filetime::set_file_mtime(&file, filetime::FileTime::from_unix_time(1_600_000_200, 0)).unwrap();
    let msgs = sb.build_json(&root, &[]);
    assert!(
        !built(&msgs).contains("copy:svc_0003"),
        "{:?}",
        built(&msgs)
    );
    assert_eq!(outputs(&root), from_scratch(&sb, &root, 3));

    // And then nothing changed at all.
    let msgs = sb.build_json(&root, &[]);
    assert_eq!(finished(&msgs)["fast_path"], true);
}

#[test]
fn a_rewrite_with_the_same_bytes_checks_one_step_and_builds_nothing() {
    let (sb, root) = repo();
    sb.build_json(&root, &[]);
    let file = root.join("services/svc-0001/lib/file-0.txt");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes).unwrap();
    let msgs = sb.build_json(&root, &[]);
    let done = finished(&msgs);
    assert_eq!(done["built"], 0);
    assert_eq!(done["hashed_files"], 1);
    assert_eq!(
        done["reused"],
        STEPS - 1,
        "its output did not change, so its dependents are reused"
    );
    // Said in the singular with -v.
    std::fs::write(&file, &bytes).unwrap();
    let out = sb
        .scone(&root)
        .args(["build", "-f", "mesh.yml", "-v"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("(1 file hashed"), "{stderr}");
}

#[test]
fn a_deleted_output_of_an_untouched_service_is_published_again() {
    let (sb, root) = repo();
    sb.build_json(&root, &[]);
    let before = outputs(&root);
    std::fs::remove_dir_all(root.join("target/images/svc_0002")).unwrap();
    std::fs::remove_file(root.join("target/enclave/svc_0004/mrenclave")).unwrap();
    let msgs = sb.build_json(&root, &[]);
    let done = finished(&msgs);
    assert_eq!(done["fast_path"], false);
    assert_eq!(done["built"], 0, "{:?}", built(&msgs));
    // Checked: the two publishers, and every step whose outputs share an
    // inode with what was deleted (identical files are one blob, hard-linked
    // wherever published, and unlinking one moved the ctime they share: the
    // base layer and `oci-layout` are in every image, this generator's
    // enclaves all have the same MRENCLAVE and MRSIGNER). Reused: every copy
    // step, the other layers, the policy and the chart.
    let reused = done["reused"].as_u64().unwrap();
    assert!(
        (2 * SERVICES as u64 + 1..=STEPS - 2).contains(&reused),
        "{reused}"
    );
    assert_eq!(outputs(&root), before);
}

#[test]
fn an_edited_manifest_or_lock_takes_the_full_path() {
    let (sb, root) = repo();
    sb.build_json(&root, &[]);
    let manifest = root.join("services/svc-0001/service.yml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace(
            "command: \"app main.cfg\"",
            "command: \"app main.cfg --v2\"",
        ),
    )
    .unwrap();
    let msgs = sb.build_json(&root, &[]);
    assert_eq!(finished(&msgs)["reused"], 0);
    assert!(built(&msgs).contains("image:svc_0001"));
    assert_eq!(outputs(&root), from_scratch(&sb, &root, 1));

    // scone.lock edited by hand (same size): the full path, which rewrites it.
    let lock = root.join("scone.lock");
    let good = std::fs::read(&lock).unwrap();
    let mut bad = good.clone();
    let at = bad.iter().rposition(|b| b.is_ascii_hexdigit()).unwrap();
    bad[at] = if bad[at] == b'0' { b'1' } else { b'0' };
    std::fs::write(&lock, &bad).unwrap();
    edit(&root.join("services/svc-0002/main.cfg"), "y");
    let msgs = sb.build_json(&root, &[]);
    assert_eq!(finished(&msgs)["reused"], 0);
    assert_eq!(outputs(&root), from_scratch(&sb, &root, 2));
}

#[test]
fn a_copied_folder_gaining_a_link_out_fails_as_a_full_build_would() {
    let (sb, root) = repo();
    sb.build_json(&root, &[]);
    // The second build takes the incremental path with the last workspace.
    edit(&root.join("services/svc-0004/main.cfg"), "z");
    let msgs = sb.build_json(&root, &[]);
    assert_eq!(
        finished(&msgs)["reused"],
        STEPS - chain("svc_0004").len() as u64
    );
    // Then a link out of the service appears in a copied folder: the checks
    // that look at copied files run again and stop the build.
    let lib = root.join("services/svc-0002/lib");
    std::os::unix::fs::symlink("../../../mesh.yml", lib.join("out")).unwrap();
    // (The same command line as the builds before: the same record.)
    let out = sb
        .scone(&root)
        .args(["build", "-f", "mesh.yml", "--message-format", "json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("holds a symlink that resolves outside the service folder"),
        "{stderr}"
    );
    // Removed again: the build goes through and equals one from scratch.
    std::fs::remove_file(lib.join("out")).unwrap();
    sb.build_json(&root, &[]);
    assert_eq!(outputs(&root), from_scratch(&sb, &root, 1));
}

/// Outputs with the folder they were built in written as `ROOT` in
/// `scone.lock` (which pins an `oci:` base by its absolute path).
fn portable(mut out: BTreeMap<String, Vec<u8>>, root: &Path) -> BTreeMap<String, Vec<u8>> {
    let lock = String::from_utf8(out["scone.lock"].clone()).unwrap();
    let lock = lock.replace(&root.display().to_string(), "ROOT");
    out.insert("scone.lock".into(), lock.into_bytes());
    out
}

/// A base that a build pinned in `scone.lock` (an `oci:` layout) is planned
/// with the pin from then on, and later edits are incremental and equal a
/// build from scratch.
#[test]
fn a_base_pinned_by_the_lock_is_built_incrementally() {
    let (sb, root) = repo();
    sb.build_json(&root, &[]);
    // An OCI layout base (pinned by digest in scone.lock, unlike a folder):
    // the image of one service, built above.
    let layout = root.join("base-oci");
    let image = root.join("target/images/svc_0000");
    for entry in walkdir::WalkDir::new(&image) {
        let entry = entry.unwrap();
        let dest = layout.join(entry.path().strip_prefix(&image).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(dest).unwrap();
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
    for i in 0..SERVICES {
        let manifest = root.join(format!("services/svc-{i:04}/service.yml"));
        let text = std::fs::read_to_string(&manifest).unwrap();
        std::fs::write(
            &manifest,
            text.replace("from: \"dir:../../base\"", "from: \"oci:../../base-oci\""),
        )
        .unwrap();
    }
    age_tree(&root);
    let msgs = sb.build_json(&root, &[]);
    assert_eq!(finished(&msgs)["reused"], 0, "manifests changed");
    let lock = std::fs::read_to_string(root.join("scone.lock")).unwrap();
    assert!(lock.contains("base-oci"), "pinned: {lock}");

    let same_as_from_scratch = |n: usize| {
        assert_eq!(
            portable(outputs(&root), &root),
            portable(
                from_scratch(&sb, &root, n),
                &sb.path().join(format!("scratch-{n}"))
            )
        );
    };
    // The last plan was made before scone.lock pinned the base: its
    // settings differ, so this build loads and plans again.
    edit(&root.join("services/svc-0001/main.cfg"), "a");
    let (msgs, kept) = build_verbose(&sb, &root);
    assert!(!kept, "a plan made before the pin was taken");
    assert_eq!(built(&msgs), chain("svc_0001"));
    assert_eq!(finished(&msgs)["reused"], STEPS - CHAIN, "incremental");
    same_as_from_scratch(1);
    // Now it holds: the next dirty builds take it.
    for (n, svc) in [(2, "svc-0002"), (3, "svc-0003"), (4, "svc-0004")] {
        edit(&root.join(format!("services/{svc}/main.cfg")), "b");
        let (msgs, kept) = build_verbose(&sb, &root);
        assert!(kept, "build {n} loaded");
        assert_eq!(built(&msgs), chain(&svc.replace('-', "_")), "build {n}");
        assert_eq!(finished(&msgs)["reused"], STEPS - CHAIN, "build {n}");
        same_as_from_scratch(n);
    }
}

/// Another key at the same path signs every enclave again on the incremental
/// path while the images are reused: `scone.lock` then has the new MRSIGNER,
/// as a build from scratch has.
#[test]
fn a_new_signing_key_signs_again_and_the_lock_follows() {
    let (sb, root) = repo();
    let key = root.join("keys/signing.pem");
    std::fs::create_dir_all(key.parent().unwrap()).unwrap();
    std::fs::copy(support::sig1_key(), &key).unwrap();
    std::fs::write(
        root.join("scone.toml"),
        "[signing]\nkey = \"keys/signing.pem\"\n",
    )
    .unwrap();
    age_tree(&root);
    sb.build_json(&root, &[]);
    let before = std::fs::read_to_string(root.join("scone.lock")).unwrap();

    let other = sb.path().join("other.pem");
    scone::sgx::keys::SigningKey::generate_at(&other).unwrap();
    std::fs::copy(&other, &key).unwrap();
    let past = filetime::FileTime::from_unix_time(1_600_000_100, 0);
    filetime::set_file_mtime(&key, past).unwrap();
    let msgs = sb.build_json(&root, &[]);
    assert_ne!(finished(&msgs)["reused"], 0, "incremental");
    let ran = built(&msgs);
    assert!(
        ran.contains("sign:svc_0000") && ran.contains("sign:svc_0005"),
        "{ran:?}"
    );
    assert!(!ran.iter().any(|s| s.starts_with("image:")), "{ran:?}");
    let after = std::fs::read_to_string(root.join("scone.lock")).unwrap();
    assert_ne!(before, after, "a new MRSIGNER");
    assert_eq!(outputs(&root), from_scratch(&sb, &root, 1));
}

/// The entry binary removed, after a build, from a `dir:` base that
/// `scone.toml` names (the load does not walk it, as it walks a
/// `build.from` folder): the next build refuses it at its field before any
/// step, as a first build would — the paths the entry check looked at are
/// watched with the load's, so it does not take the last plan and fail at
/// the sign step instead.
#[test]
fn an_entry_binary_gone_from_the_base_is_refused_before_any_step() {
    let (sb, root) = repo();
    for i in 0..SERVICES {
        let manifest = root.join(format!("services/svc-{i:04}/service.yml"));
        let text = std::fs::read_to_string(&manifest).unwrap();
        std::fs::write(&manifest, text.replace("  from: \"dir:../../base\"\n", "")).unwrap();
    }
    std::fs::write(root.join("scone.toml"), "[base]\nbinary = \"dir:base\"\n").unwrap();
    age_tree(&root);
    sb.build_json(&root, &[]);
    let app = root.join("base").join(support::monorepo::APP_PATH);
    std::fs::remove_file(&app).unwrap();
    let out = sb
        .scone(&root)
        .args(["build", "-f", "mesh.yml", "-v"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("[invalid-value]") && stderr.contains("entry binary `app`"),
        "{stderr}"
    );
    assert!(!stderr.contains("Built"), "a step ran: {stderr}");
    assert!(!stderr.contains("as the last build"), "{stderr}");
}

/// A `dir:` base's layer keeps every permission bit of its files and
/// folders, so a `chmod` there is an edit: its base and every image on it
/// are built again, as from scratch — not only when the exec bit moved.
#[test]
fn a_mode_changed_in_a_dir_base_is_built_again_as_from_scratch() {
    use std::os::unix::fs::PermissionsExt;
    let (sb, root) = repo();
    let base = root.join("base");
    std::fs::write(base.join("etc.conf"), "conf\n").unwrap();
    std::fs::create_dir(base.join("tmp")).unwrap();
    age_tree(&base);
    sb.build_json(&root, &[]);
    let chmod = |rel: &str, mode: u32| {
        std::fs::set_permissions(base.join(rel), std::fs::Permissions::from_mode(mode)).unwrap()
    };
    for (n, (rel, mode)) in [
        ("etc.conf", 0o600),
        ("tmp", 0o1777),
        (support::monorepo::APP_PATH, 0o4755),
        ("usr", 0o700),
    ]
    .into_iter()
    .enumerate()
    {
        chmod(rel, mode);
        let msgs = sb.build_json(&root, &["--explain"]);
        let rebuilt = built(&msgs);
        assert!(
            rebuilt.contains("base:dir:base") && rebuilt.contains("image:svc_0000"),
            "{rel} {mode:o}: {rebuilt:?}"
        );
        assert_eq!(
            outputs(&root),
            from_scratch(&sb, &root, n),
            "{rel} {mode:o}: the image keeps the mode"
        );
        assert_no_op(&sb, &root);
    }
}

/// The next build replays the last one: nothing it lists moved.
fn assert_no_op(sb: &Sandbox, root: &Path) {
    let msgs = sb.build_json(root, &[]);
    assert_eq!(finished(&msgs)["fast_path"], true, "{:?}", finished(&msgs));
}

#[test]
fn a_copied_link_is_a_no_op_until_it_points_elsewhere() {
    // A `dir:` base's rootfs has links (the default python one too),
    // and services copy them: every build of such a workspace was dirty
    // (the state knew no entry for a link), so none was a no-op.
    let (sb, root) = repo();
    let lib = root.join("services/svc-0001/lib");
    std::os::unix::fs::symlink("file-0.txt", lib.join("link.txt")).unwrap();
    age_tree(&lib);
    assert_eq!(finished(&sb.build_json(&root, &[]))["built"], STEPS);
    assert_no_op(&sb, &root);

    let tag = || std::fs::read_to_string(root.join("target/enclave/svc_0001/fspf_tag")).unwrap();
    let before = tag();

    // Pointed elsewhere: that service's chain is built again, as from scratch,
    // and the link is protected: the fspf tag, and with it the policy, change.
    std::fs::remove_file(lib.join("link.txt")).unwrap();
    std::os::unix::fs::symlink("file-1.txt", lib.join("link.txt")).unwrap();
    age_tree(&lib);
    let msgs = sb.build_json(&root, &[]);
    let rebuilt = built(&msgs);
    assert!(rebuilt.contains("copy:svc_0001"), "{rebuilt:?}");
    assert!(rebuilt.contains("policy:mono-0"), "{rebuilt:?}");
    assert!(rebuilt.is_subset(&chain("svc_0001")), "{rebuilt:?}");
    assert_ne!(tag(), before, "a re-pointed link changes the fspf tag");
    assert_eq!(outputs(&root), from_scratch(&sb, &root, 1));
    assert_no_op(&sb, &root);

    // `scone verify --image` recomputes the tag from the image's layer (the
    // link with it) on its own, and finds the policy's.
    let out = sb
        .scone(&root)
        .args(["verify", "--message-format", "json", "--image"])
        .arg(format!(
            "oci:{}",
            root.join("target/images/svc_0001").display()
        ))
        .arg("--session")
        .arg(root.join("target/policy/mono-0.yaml"))
        .arg("--sigstruct")
        .arg(root.join("target/enclave/svc_0001/sigstruct.bin"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("fspf tag"), "{text}");
}

#[test]
fn below_scone_toml_a_meshfile_that_appears_here_is_taken_and_the_roots_again_when_it_goes() {
    let sb = Sandbox::new();
    let root = sb.hello_world("app");
    std::fs::create_dir(root.join(".git")).unwrap();
    std::fs::write(root.join("scone.toml"), "").unwrap();
    let sub = root.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let build = || {
        let out = sb.scone(&sub).args(["build", "-q"]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let policies = || {
        let mut names: Vec<String> = std::fs::read_dir(root.join("target/policy"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    // From a folder below scone.toml: the root's Meshfile, into the root's target/.
    build();
    assert_eq!(policies(), ["myPythonApp.yaml"]);
    assert!(!sub.join("target").exists());
    // A Meshfile of the current folder comes first, from the next build on...
    let mesh = std::fs::read_to_string(root.join("mesh.yml")).unwrap();
    assert_eq!(mesh.matches("namespace: myPythonApp").count(), 1);
    std::fs::write(
        sub.join("mesh.yml"),
        mesh.replace("namespace: myPythonApp", "namespace: otherApp"),
    )
    .unwrap();
    build();
    assert_eq!(policies(), ["otherApp.yaml"]);
    // ...and the root's again once it is gone.
    std::fs::remove_file(sub.join("mesh.yml")).unwrap();
    build();
    assert_eq!(policies(), ["myPythonApp.yaml"]);
}

/// A file dated ahead of the clock (an archive made on a machine whose clock
/// is ahead, `touch -d tomorrow`): the workspace is a no-op once the file's
/// ctime is out of the racy window, where every build used to hash it again
/// and say it changed. Its next edit, the same size with the same date set
/// again, moves its ctime: that service is built again, as from scratch.
#[test]
fn a_file_dated_ahead_is_a_no_op_and_its_edit_is_still_seen() {
    let (sb, root) = repo();
    let file = root.join("services/svc-0002/lib/file-0.txt");
    let ahead =
        filetime::FileTime::from_unix_time(filetime::FileTime::now().unix_seconds() + 3_600, 0);
    filetime::set_file_mtime(&file, ahead).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(finished(&sb.build_json(&root, &[]))["built"], STEPS);
    assert_no_op(&sb, &root);

    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] = if bytes[last] == b'x' { b'y' } else { b'x' };
    std::fs::write(&file, &bytes).unwrap();
    filetime::set_file_mtime(&file, ahead).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    let msgs = sb.build_json(&root, &[]);
    let rebuilt = built(&msgs);
    assert!(rebuilt.contains("copy:svc_0002"), "{rebuilt:?}");
    assert!(rebuilt.is_subset(&chain("svc_0002")), "{rebuilt:?}");
    assert_eq!(outputs(&root), from_scratch(&sb, &root, 1));
    assert_no_op(&sb, &root);
}

/// A file the last build looked at just after it was written (racy: another
/// write in the same tick would not have shown) is read again, and `-v` says
/// it *may* have changed rather than that it changed; its bytes are the
/// same, so nothing is built. (Dated to a whole second just ahead, so the
/// racy window is the two seconds of a whole-second filesystem.)
#[test]
fn a_file_read_just_after_it_was_written_may_have_changed_and_is_read_again() {
    let (sb, root) = repo();
    sb.build_json(&root, &[]);
    let file = root.join("services/svc-0003/lib/file-0.txt");
    let bytes = std::fs::read(&file).unwrap();
    // The build after the write must look within three seconds of it (the
    // window): on a machine slow enough to miss it, write and build again.
    for _ in 0..3 {
        let started = std::time::Instant::now();
        std::fs::write(&file, &bytes).unwrap();
        let now = filetime::FileTime::now().unix_seconds();
        filetime::set_file_mtime(&file, filetime::FileTime::from_unix_time(now + 2, 0)).unwrap();
        assert_eq!(finished(&sb.build_json(&root, &[]))["built"], 0);
        if started.elapsed() < std::time::Duration::from_secs(3) {
            break;
        }
    }
    let out = sb
        .scone(&root)
        .args(["build", "-f", "mesh.yml", "-v", "--message-format", "json"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(
            "file-0.txt may have changed: the last build looked at it just after it was written"
        ),
        "{err}"
    );
    let done = finished(&support::messages(&out.stdout));
    assert_eq!(done["built"], 0, "the same bytes: {done:?}");
    assert_eq!(done["hashed_files"], 1, "read again: {done:?}");
}

/// The entries of the own (last) layer of the image built for `service`:
/// path → the target of a symlink, `None` for anything else.
fn own_layer(root: &Path, service: &str) -> BTreeMap<String, Option<String>> {
    own_layer_entries(root, service)
        .into_iter()
        .map(|(path, (_, _, target))| (path, target))
        .collect()
}

/// The entries of the own (last) layer of the image built for `service`:
/// path → its type, its mode and the target of a symlink.
fn own_layer_entries(
    root: &Path,
    service: &str,
) -> BTreeMap<String, (tar::EntryType, u32, Option<String>)> {
    let layout = root.join("target/images").join(service);
    let blob = |digest: &serde_json::Value| {
        let hex = digest.as_str().unwrap().trim_start_matches("sha256:");
        layout.join("blobs/sha256").join(hex)
    };
    let json = |path: PathBuf| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    let index = json(layout.join("index.json"));
    let manifest = json(blob(&index["manifests"][0]["digest"]));
    let last = blob(&manifest["layers"].as_array().unwrap().last().unwrap()["digest"]);
    let mut archive = tar::Archive::new(scone::oci::rootfs::open_layer(&last).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let path = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
            let kind = entry.header().entry_type();
            let target = match kind {
                tar::EntryType::Symlink => entry
                    .link_name_bytes()
                    .map(|l| String::from_utf8(l.into_owned()).unwrap()),
                _ => None,
            };
            let mode = entry.header().mode().unwrap();
            (path.trim_end_matches('/').to_string(), (kind, mode, target))
        })
        .collect()
}

/// A `copy` entry that is a symlink to a folder is copied as the link (as
/// one inside a copied folder is): `check` passes and the build does, the
/// image holds the link (not the folder's files under it, nor in the SBOM),
/// and the link pointed elsewhere, or replaced by a folder, is built again
/// as from scratch.
#[test]
fn a_copied_link_to_a_folder_is_the_link_and_is_built_again_when_it_points_elsewhere() {
    let (sb, root) = repo();
    let svc = root.join("services/svc-0001");
    for (folder, file) in [("conf-a", "a.txt"), ("conf-b", "b.txt")] {
        std::fs::create_dir_all(svc.join(folder)).unwrap();
        std::fs::write(svc.join(folder).join(file), folder).unwrap();
    }
    std::os::unix::fs::symlink("conf-a", svc.join("conf")).unwrap();
    let manifest = svc.join("service.yml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace(
            "    - lib\n",
            "    - lib\n    - conf\n    - conf-a\n    - conf-b\n",
        ),
    )
    .unwrap();
    age_tree(&svc);

    let out = sb
        .scone(&root)
        .args(["check", "-f", "mesh.yml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("copy path"), "{stderr}");
    assert_eq!(finished(&sb.build_json(&root, &[]))["built"], STEPS);
    let layer = own_layer(&root, "svc_0001");
    assert_eq!(layer["app/conf"], Some("conf-a".to_string()), "{layer:?}");
    assert_eq!(layer["app/conf-a/a.txt"], None);
    assert!(
        !layer.keys().any(|p| p.starts_with("app/conf/")),
        "{layer:?}"
    );
    let sbom = std::fs::read_to_string(root.join("target/sbom/svc_0001.spdx.json")).unwrap();
    assert!(sbom.contains("\"./app/conf-a/a.txt\""), "{sbom}");
    assert!(!sbom.contains("./app/conf/"), "{sbom}");
    assert_no_op(&sb, &root);

    // Pointed elsewhere: that service's chain is built again, as from scratch.
    std::fs::remove_file(svc.join("conf")).unwrap();
    std::os::unix::fs::symlink("conf-b", svc.join("conf")).unwrap();
    age_tree(&svc);
    let msgs = sb.build_json(&root, &[]);
    let rebuilt = built(&msgs);
    assert!(rebuilt.contains("copy:svc_0001"), "{rebuilt:?}");
    assert!(rebuilt.is_subset(&chain("svc_0001")), "{rebuilt:?}");
    assert_eq!(
        own_layer(&root, "svc_0001")["app/conf"],
        Some("conf-b".to_string())
    );
    assert_eq!(outputs(&root), from_scratch(&sb, &root, 1));
    assert_no_op(&sb, &root);

    // Replaced by a folder: its files are copied, as from scratch.
    std::fs::remove_file(svc.join("conf")).unwrap();
    std::fs::create_dir(svc.join("conf")).unwrap();
    std::fs::write(svc.join("conf/c.txt"), "c").unwrap();
    age_tree(&svc);
    let msgs = sb.build_json(&root, &[]);
    let rebuilt = built(&msgs);
    assert!(rebuilt.contains("copy:svc_0001"), "{rebuilt:?}");
    let layer = own_layer(&root, "svc_0001");
    assert_eq!(layer["app/conf"], None, "{layer:?}");
    assert!(layer.contains_key("app/conf/c.txt"), "{layer:?}");
    assert_eq!(outputs(&root), from_scratch(&sb, &root, 2));
    assert_no_op(&sb, &root);
}

/// A name that is not UTF-8 added to a copied folder after a successful
/// build is refused by the next build, with the manifest's line (the load
/// runs again: the folder's listing changed), as a full build refuses it;
/// taken away again, the build goes through and equals one from scratch.
#[test]
fn a_name_that_is_not_utf8_added_to_a_copied_folder_fails_as_a_full_build_would() {
    use std::os::unix::ffi::OsStrExt;
    let (sb, root) = repo();
    sb.build_json(&root, &[]);
    edit(&root.join("services/svc-0004/main.cfg"), "z");
    sb.build_json(&root, &[]);

    let svc = root.join("services/svc-0002");
    let line = std::fs::read_to_string(svc.join("service.yml"))
        .unwrap()
        .lines()
        .position(|l| l == "    - lib")
        .unwrap()
        + 1;
    let at = format!("services/svc-0002/service.yml:{line}:7");
    let bad = svc
        .join("lib")
        .join(std::ffi::OsStr::from_bytes(b"n-\xff.txt"));
    std::fs::write(&bad, "A").unwrap();
    age_tree(&svc.join("lib"));
    // Twice: a failed build leaves nothing the next one takes for done. And
    // `check` says the same.
    for args in [&["build"][..], &["build"], &["check"]] {
        let out = sb
            .scone(&root)
            .args(args)
            .args(["-f", "mesh.yml"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "error: {at}: copy folder `lib` holds a name that is not UTF-8: n-\\xff.txt [invalid-value]"
            )),
            "{args:?}: {stderr}"
        );
    }
    assert!(
        !own_layer(&root, "svc_0002")
            .keys()
            .any(|p| p.contains('\u{fffd}')),
        "nothing renamed"
    );

    std::fs::remove_file(&bad).unwrap();
    sb.build_json(&root, &[]);
    assert_eq!(outputs(&root), from_scratch(&sb, &root, 1));
}

/// A copied folder's empty folders are in the image, as folders of mode
/// 0755 (whatever their mode on disk): one made after a build builds that
/// service's chain again and the image has it, as from scratch; taken away,
/// it is gone again. A `copy` entry that is an empty folder is in the image
/// too.
#[test]
fn an_empty_folder_in_a_copied_folder_is_in_the_image_and_goes_when_it_goes() {
    use std::os::unix::fs::PermissionsExt;
    let (sb, root) = repo();
    assert_eq!(finished(&sb.build_json(&root, &[]))["built"], STEPS);
    let svc = root.join("services/svc-0001");
    let folder = |service: &str, path: &str| {
        let entries = own_layer_entries(&root, service);
        entries
            .get(path)
            .map(|(kind, mode, _)| (kind.is_dir(), *mode))
    };
    assert_eq!(folder("svc_0001", "app/lib/uploads"), None);

    let uploads = svc.join("lib/uploads");
    std::fs::create_dir_all(uploads.join("inner")).unwrap();
    std::fs::set_permissions(&uploads, std::fs::Permissions::from_mode(0o700)).unwrap();
    age_tree(&svc);
    let rebuilt = built(&sb.build_json(&root, &[]));
    assert!(rebuilt.contains("copy:svc_0001"), "{rebuilt:?}");
    assert!(rebuilt.contains("layer:svc_0001"), "{rebuilt:?}");
    assert!(rebuilt.is_subset(&chain("svc_0001")), "{rebuilt:?}");
    assert_eq!(folder("svc_0001", "app/lib/uploads"), Some((true, 0o755)));
    assert_eq!(
        folder("svc_0001", "app/lib/uploads/inner"),
        Some((true, 0o755))
    );
    assert_eq!(outputs(&root), from_scratch(&sb, &root, 1));
    assert_no_op(&sb, &root);

    std::fs::remove_dir(uploads.join("inner")).unwrap();
    age_tree(&svc);
    sb.build_json(&root, &[]);
    assert_eq!(folder("svc_0001", "app/lib/uploads"), Some((true, 0o755)));
    assert_eq!(folder("svc_0001", "app/lib/uploads/inner"), None);
    assert_eq!(outputs(&root), from_scratch(&sb, &root, 2));

    std::fs::remove_dir(&uploads).unwrap();
    age_tree(&svc);
    // (The layer of the first build, which the store still holds.)
    sb.build_json(&root, &[]);
    assert_eq!(folder("svc_0001", "app/lib/uploads"), None);
    assert_eq!(outputs(&root), from_scratch(&sb, &root, 3));
    assert_no_op(&sb, &root);

    // An empty folder named by `copy` itself.
    let other = root.join("services/svc-0002");
    std::fs::create_dir(other.join("cache")).unwrap();
    let manifest = other.join("service.yml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace("    - lib\n", "    - lib\n    - cache\n"),
    )
    .unwrap();
    age_tree(&other);
    sb.build_json(&root, &[]);
    assert_eq!(folder("svc_0002", "app/cache"), Some((true, 0o755)));
    assert_eq!(outputs(&root), from_scratch(&sb, &root, 4));
}
