//! Tests of the embedded local CAS: predecessor chain, secrets, file modes.

use super::*;
use crate::cas::session::{render, SecretDecl, ServiceInput, SessionInput};
use crate::cas::{apply_session, ApplyOutcome};
use std::os::unix::fs::PermissionsExt;

fn input(user: &str, size: u32) -> SessionInput {
    SessionInput {
        name: "myPythonApp".into(),
        services: vec![ServiceInput {
            name: "python_app".into(),
            image_name: "python_hello_user".into(),
            mrenclaves: vec!["ab".repeat(32)],
            command: "python3 print_env.py".into(),
            pwd: "/python".into(),
            environment: vec![
                ("API_PASSWORD".into(), "$$SCONE::password".into()),
                ("API_USER".into(), user.into()),
            ],
            fspf_tag: None,
        }],
        secrets: vec![
            SecretDecl {
                name: "password".into(),
                kind: SecretKind::Ascii,
                size: Some(size),
                fixed: false,
                export_to: vec![],
            },
            SecretDecl {
                name: "key".into(),
                kind: SecretKind::Other("private-key".into()),
                size: None,
                fixed: false,
                export_to: vec![],
            },
        ],
        ..SessionInput::default()
    }
}

fn yaml(user: &str, size: u32) -> String {
    render(&input(user, size)).expect("renders")
}

fn password(cas: &LocalCas) -> Vec<u8> {
    let values = cas.secret_values("myPythonApp").expect("values");
    assert!(!values.contains_key("key"), "opaque kinds carry no value");
    values["password"].expose_bytes().to_vec()
}

#[test]
fn predecessor_chain_is_enforced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cas = LocalCas::open(dir.path()).expect("opens");
    assert_eq!(cas.current_hash("myPythonApp").expect("reads"), None);

    let bogus = "0".repeat(64);
    let err = cas
        .upload(&yaml("me", 10), Some(&bogus))
        .expect_err("no session yet");
    assert!(matches!(
        err,
        CasError::PredecessorConflict { current: None, .. }
    ));

    let first = cas.upload(&yaml("me", 10), None).expect("creates");
    assert_eq!(
        cas.current_hash("myPythonApp").expect("reads"),
        Some(first.clone())
    );
    assert_eq!(first, session_hash(&yaml("me", 10)));

    let err = cas
        .upload(&yaml("you", 10), None)
        .expect_err("update needs predecessor");
    assert!(err.to_string().contains(&first), "{err}");
    let err = cas
        .upload(&yaml("you", 10), Some(&bogus))
        .expect_err("wrong predecessor");
    let text = err.to_string();
    assert!(
        text.contains(&first) && text.contains("scone apply"),
        "{text}"
    );

    let second = cas.upload(&yaml("you", 10), Some(&first)).expect("updates");
    assert_ne!(first, second);
    let record = cas.session("myPythonApp").expect("reads").expect("exists");
    assert_eq!(record.hash, second);
    assert!(record.yaml.contains(&format!("predecessor: \"{first}\"")));
    assert_eq!(cas.history("myPythonApp").expect("history"), vec![first]);
}

#[test]
fn secrets_are_kept_on_update_and_regenerated_when_redeclared() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cas = LocalCas::open(dir.path()).expect("opens");
    let h1 = cas.upload(&yaml("me", 10), None).expect("creates");
    let p1 = password(&cas);
    assert_eq!(p1.len(), 10);

    let h2 = cas.upload(&yaml("you", 10), Some(&h1)).expect("updates");
    assert_eq!(password(&cas), p1, "kept when its declaration is unchanged");

    cas.upload(&yaml("you", 12), Some(&h2)).expect("updates");
    let p3 = password(&cas);
    assert_eq!(p3.len(), 12, "regenerated with the new size");
    assert_ne!(p3[..10], p1[..]);
}

#[test]
fn files_are_private() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("cas");
    let cas = LocalCas::open(&root).expect("opens");
    cas.upload(&yaml("me", 10), None).expect("creates");
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&root), 0o700);
    assert_eq!(mode(&root.join("sessions")), 0o700);
    let file = root.join("sessions").join("myPythonApp.json");
    assert_eq!(mode(&file), 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(root.join("sessions"))
        .expect("lists")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
        .collect();
    assert!(leftovers.is_empty(), "no temp files left behind");
}

#[test]
fn ownership_is_enforced_for_certificate_clients() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cas = LocalCas::open(dir.path()).expect("opens");
    let h1 = cas
        .upload_as(&yaml("me", 10), None, Some("alice"))
        .expect("creates");
    let err = cas
        .upload_as(&yaml("you", 10), Some(&h1), Some("mallory"))
        .expect_err("not the creator");
    assert!(matches!(err, CasError::NotOwner { .. }));
    assert!(cas.session_as("myPythonApp", Some("mallory")).is_err());
    assert!(cas
        .session_as("myPythonApp", Some("alice"))
        .expect("reads")
        .is_some());
    cas.upload_as(&yaml("you", 10), Some(&h1), Some("alice"))
        .expect("creator updates");
}

#[test]
fn apply_uploads_only_changes_and_chains_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cas = LocalCas::open(dir.path()).expect("opens");
    let forgotten = "f".repeat(64);
    let first = apply_session(&cas, &yaml("me", 10), Some(&forgotten)).expect("applies");
    let ApplyOutcome::Uploaded {
        hash: h1,
        predecessor: None,
        own_update: false,
    } = first
    else {
        panic!("first apply creates, whatever the lock remembers: {first:?}");
    };
    let p1 = password(&cas);

    let again = apply_session(&cas, &yaml("me", 10), Some(&h1)).expect("applies");
    assert_eq!(again, ApplyOutcome::Unchanged { hash: h1.clone() });

    let changed = apply_session(&cas, &yaml("you", 10), Some(&h1)).expect("applies");
    let ApplyOutcome::Uploaded {
        hash: h2,
        predecessor,
        own_update: false,
    } = changed
    else {
        panic!("a change uploads: {changed:?}");
    };
    assert_eq!(predecessor.as_deref(), Some(h1.as_str()));
    assert_eq!(password(&cas), p1);

    let unchanged = apply_session(&cas, &yaml("you", 10), None).expect("applies");
    assert_eq!(unchanged, ApplyOutcome::Unchanged { hash: h2.clone() });

    let stale = apply_session(&cas, &yaml("them", 10), Some(&h1)).expect_err("stale lock");
    assert!(matches!(stale, CasError::PredecessorConflict { .. }));
    let fetched = apply_session(&cas, &yaml("them", 10), None).expect("fetches predecessor");
    assert!(matches!(fetched, ApplyOutcome::Uploaded { predecessor: Some(p), .. } if p == h2));
}

/// An apply that CAS took but that stopped before it wrote `scone.lock`:
/// the next apply, whose lock names the hash before, updates the project's
/// own session from where it is. A session two updates on, one that records
/// no project, or another project's view of it is still refused.
#[test]
fn an_own_update_of_the_locked_hash_is_updated_from_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = LocalCas::open(dir.path())
        .expect("opens")
        .for_project("/p/one", false);
    let applied = |cas: &LocalCas, user: &str, known: Option<&str>| {
        apply_session(cas, &yaml(user, 10), known).map(|o| o.hash().to_string())
    };
    let h1 = applied(&one, "me", None).expect("creates");
    let h2 = applied(&one, "you", Some(&h1)).expect("updates");
    // scone.lock still says h1.
    let record = one.session("myPythonApp").unwrap().expect("held");
    assert_eq!(record.project.as_deref(), Some("/p/one"));
    assert!(crate::cas::is_own_update(&record, &h1, Some("/p/one")));
    assert!(!crate::cas::is_own_update(&record, &h1, Some("/p/two")));
    assert!(!crate::cas::is_own_update(&record, &h1, None));
    assert!(!crate::cas::is_own_update(&record, &h2, Some("/p/one")));
    let resumed = apply_session(&one, &yaml("them", 10), Some(&h1)).expect("updates h2");
    assert!(
        matches!(&resumed, ApplyOutcome::Uploaded { predecessor: Some(p), own_update: true, .. } if *p == h2),
        "{resumed:?}"
    );
    let stale = applied(&one, "us", Some(&h1)).expect_err("h3 follows h2, not h1");
    assert!(
        matches!(stale, CasError::PredecessorConflict { .. }),
        "{stale}"
    );

    // A session that records no project (made before sessions had one).
    let dir = tempfile::tempdir().expect("tempdir");
    let nobody = LocalCas::open(dir.path()).expect("opens");
    let h1 = applied(&nobody, "me", None).expect("creates");
    applied(&nobody, "you", Some(&h1)).expect("updates");
    let one = nobody.clone().for_project("/p/one", false);
    let err = applied(&one, "them", Some(&h1)).expect_err("not known to be one's");
    assert!(matches!(err, CasError::PredecessorConflict { .. }), "{err}");
}

#[test]
fn concurrent_writers_keep_the_chain_consistent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cas = LocalCas::open(dir.path()).expect("opens");
    let first = cas.upload(&yaml("start", 10), None).expect("creates");
    let successes: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let cas = LocalCas::open(dir.path()).expect("opens");
                scope.spawn(move || {
                    let mut ok = 0;
                    for round in 0..5 {
                        let current = cas.current_hash("myPythonApp").expect("reads");
                        let body = yaml(&format!("writer {i} round {round}"), 10);
                        match cas.upload(&body, current.as_deref()) {
                            Ok(_) => ok += 1,
                            Err(CasError::PredecessorConflict { .. }) => {}
                            Err(e) => panic!("unexpected error: {e}"),
                        }
                    }
                    ok
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).sum()
    });
    assert!(successes >= 1);
    let history = cas.history("myPythonApp").expect("history");
    assert_eq!(
        history.len(),
        successes,
        "one history entry per accepted update"
    );
    assert_eq!(history[0], first);
    assert_eq!(password(&cas).len(), 10);
}

#[test]
fn a_session_holding_a_placeholder_is_refused_and_its_values_are_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cas = LocalCas::open(dir.path()).expect("opens");
    let mut with_fixed = input("me", 10);
    with_fixed.secrets[0].fixed = true;
    with_fixed.secrets[0].size = None;
    let template = render(&with_fixed).expect("renders");
    let err = cas.upload(&template, None).expect_err("a placeholder");
    assert!(err.to_string().contains("scone apply"), "{err}");
    assert_eq!(cas.current_hash("myPythonApp").expect("reads"), None);

    let values = [("password".to_string(), "fixed-pw-1".to_string())].into();
    let salt = crate::cas::fixed::new_salt().expect("rng");
    let filled = crate::cas::fixed::fill(&template, &values, &salt).expect("fills");
    cas.upload(&filled, None).expect("uploads");
    assert_eq!(password(&cas), b"fixed-pw-1");
    let stored = cas.secret_values("myPythonApp").expect("values");
    assert_eq!(
        stored[crate::cas::fixed::SALT_SECRET].expose_str(),
        Some(salt.as_str())
    );
}

#[test]
fn a_session_belongs_to_the_project_that_made_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = LocalCas::open(dir.path()).expect("opens");
    // Made before sessions had a project: the first project to apply adopts it.
    let h0 = plain.upload(&yaml("old", 10), None).expect("creates");
    assert_eq!(plain.project_of("myPythonApp").expect("reads"), None);
    let one = plain.clone().for_project("/one", false);
    let h1 = one.upload(&yaml("one", 10), Some(&h0)).expect("adopts");
    assert_eq!(
        plain.project_of("myPythonApp").expect("reads").as_deref(),
        Some("/one")
    );
    // Another project is refused, before and at the upload; nothing changes.
    let two = plain.clone().for_project("/two", false);
    assert!(matches!(
        two.check_project("myPythonApp"),
        Err(CasError::OtherProject { ref owner, .. }) if owner == "/one"
    ));
    assert!(matches!(
        two.upload(&yaml("two", 10), Some(&h1)),
        Err(CasError::OtherProject { .. })
    ));
    assert_eq!(
        plain.current_hash("myPythonApp").expect("reads"),
        Some(h1.clone())
    );
    // Taken over, it is the other project's, and the first one is refused.
    let taker = plain.clone().for_project("/two", true);
    taker.check_project("myPythonApp").expect("may take over");
    taker
        .upload(&yaml("two", 10), Some(&h1))
        .expect("takes over");
    assert_eq!(
        plain.project_of("myPythonApp").expect("reads").as_deref(),
        Some("/two")
    );
    assert!(matches!(
        one.check_project("myPythonApp"),
        Err(CasError::OtherProject { .. })
    ));
    // Secrets stay with the session whoever holds it.
    assert_eq!(password(&plain).len(), 10);
}

/// A session a `scone cas serve` client made is its certificate's: a
/// project's apply is refused, naming the certificate and `--take-over`;
/// taken over, the certificate may neither read nor update it.
#[test]
fn a_client_s_session_is_refused_until_taken_over_which_cuts_the_client_out() {
    let dir = tempfile::tempdir().unwrap();
    let plain = LocalCas::open(dir.path()).unwrap();
    let h0 = plain.upload_as(&yaml("b", 10), None, Some("bfp")).unwrap();
    let one = plain.clone().for_project("/one", false);
    for err in [
        one.check_project("myPythonApp").unwrap_err(),
        one.upload(&yaml("one", 10), Some(&h0)).unwrap_err(),
    ] {
        let text = err.to_string();
        assert!(matches!(err, CasError::ClientOwned { .. }), "{text}");
        assert!(text.contains("client certificate bfp"), "{text}");
        assert!(text.contains("--take-over myPythonApp"), "{text}");
    }
    assert_eq!(
        plain.certificate_of("myPythonApp").unwrap().as_deref(),
        Some("bfp")
    );
    let taker = plain.clone().for_project("/one", true);
    let h1 = taker
        .upload(&yaml("one", 10), Some(&h0))
        .expect("takes over");
    assert_eq!(plain.certificate_of("myPythonApp").unwrap(), None);
    assert!(matches!(
        plain.session_as("myPythonApp", Some("bfp")),
        Err(CasError::NotOwner { .. })
    ));
    assert!(matches!(
        plain.upload_as(&yaml("b", 10), Some(&h1), Some("bfp")),
        Err(CasError::NotOwner { .. })
    ));
    one.upload(&yaml("two", 10), Some(&h1))
        .expect("one's own now");
}

/// A session whose owner's folder is gone (a deleted clone) is still
/// refused, and the error says the folder no longer exists; one whose owner
/// is there does not say so.
#[test]
fn the_refusal_says_when_the_owner_s_folder_no_longer_exists() {
    let dir = tempfile::tempdir().unwrap();
    let plain = LocalCas::open(&dir.path().join("cas")).unwrap();
    let owner = dir.path().join("first-clone");
    std::fs::create_dir(&owner).unwrap();
    let owner = owner.to_str().unwrap().to_string();
    let one = plain.clone().for_project(owner.clone(), false);
    one.upload(&yaml("one", 10), None).expect("creates");
    let two = plain.clone().for_project("/two", false);
    let there = two.check_project("myPythonApp").unwrap_err().to_string();
    assert!(there.contains(&owner), "{there}");
    assert!(!there.contains("no longer exists"), "{there}");
    std::fs::remove_dir(&owner).unwrap();
    let gone = match two.check_project("myPythonApp") {
        Err(
            e @ CasError::OtherProject {
                owner_gone: true, ..
            },
        ) => e.to_string(),
        other => panic!("refused, the owner gone: {other:?}"),
    };
    assert!(
        gone.contains(&format!("{owner} (a folder that no longer exists")),
        "{gone}"
    );
    assert!(gone.contains("--take-over myPythonApp"), "{gone}");
}

/// Mode bits and sorted entry names of `dir`, to compare before and after.
fn looks(dir: &Path) -> (u32, Vec<String>) {
    let mode = std::fs::metadata(dir).expect("stat").permissions().mode() & 0o777;
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("lists")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    (mode, names)
}

/// A reader makes and changes nothing: a missing folder stays missing and
/// reads as a CAS without sessions; a folder that is no CAS keeps its mode
/// and files.
#[test]
fn readers_make_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing").join("cas");
    let cas = LocalCas::open(&missing).expect("opens");
    assert!(!cas.exists());
    assert_eq!(cas.session("myPythonApp").expect("reads"), None);
    assert_eq!(cas.project_of("myPythonApp").expect("reads"), None);
    assert!(cas.history("myPythonApp").expect("reads").is_empty());
    assert!(matches!(
        cas.secret_values("myPythonApp"),
        Err(CasError::NotFound { .. })
    ));
    assert!(!dir.path().join("missing").exists(), "nothing made");

    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("file"), "keep").unwrap();
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o755)).unwrap();
    let before = looks(&other);
    let cas = LocalCas::open(&other).expect("opens");
    assert_eq!(cas.session("myPythonApp").expect("reads"), None);
    cas.for_project("/p", false)
        .check_project("myPythonApp")
        .expect("nothing to refuse");
    assert_eq!(looks(&other), before);
}

/// A writer uses a folder that is missing (made 0700 with its parents), empty
/// or a CAS already, and leaves an existing folder's mode; any other folder is
/// refused, by name, before anything is written to it.
#[test]
fn writers_use_only_a_new_empty_or_cas_folder() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("file"), "keep").unwrap();
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o755)).unwrap();
    let before = looks(&other);
    let err = LocalCas::create(&other).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, CasError::NotCasDir { .. }), "{err:?}");
    assert!(
        text.contains(&other.display().to_string()) && text.contains("SCONE_CAS_DIR"),
        "{text}"
    );
    let through_open = LocalCas::open(&other).unwrap();
    assert!(matches!(
        through_open.upload(&yaml("me", 10), None),
        Err(CasError::NotCasDir { .. })
    ));
    assert_eq!(looks(&other), before, "left as it was");

    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    assert!(matches!(
        LocalCas::create(&file),
        Err(CasError::NotCasDir { .. })
    ));

    let fresh = dir.path().join("new").join("deep").join("cas");
    LocalCas::create(&fresh)
        .expect("made")
        .upload(&yaml("me", 10), None)
        .expect("creates");
    for made in [
        dir.path().join("new"),
        dir.path().join("new/deep"),
        fresh.clone(),
        fresh.join("sessions"),
    ] {
        assert_eq!(looks(&made).0, 0o700, "{}", made.display());
    }

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o750)).unwrap();
    let cas = LocalCas::create(&empty).expect("an empty folder is taken");
    let first = cas.upload(&yaml("me", 10), None).expect("creates");
    assert_eq!(looks(&empty).0, 0o750, "its mode is left");
    assert_eq!(looks(&empty.join("sessions")).0, 0o700);
    assert_eq!(loose_mode(&empty), Some(0o750));
    assert_eq!(loose_mode(&fresh), None);
    LocalCas::create(&empty)
        .expect("a CAS is taken")
        .upload(&yaml("you", 10), Some(&first))
        .expect("updates");
    assert_eq!(looks(&empty).0, 0o750, "its mode is left");
}

#[test]
fn a_cas_dir_and_a_target_dir_overlap_when_one_holds_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let target = root.join("ws/target");
    std::fs::create_dir_all(&target).unwrap();
    std::os::unix::fs::symlink(&target, root.join("link")).unwrap();
    let overlap = |cas: &str, target: &str| target_overlap(Path::new(cas), Path::new(target), root);
    assert_eq!(overlap("ws/target", "ws/target"), Some(Overlap::Same));
    assert_eq!(overlap("ws/target/cas", "ws/target"), Some(Overlap::Inside));
    assert_eq!(overlap("link/x/../cas", "ws/target"), Some(Overlap::Inside));
    assert_eq!(overlap("ws/target/./", "link"), Some(Overlap::Same));
    assert_eq!(overlap("ws", "ws/target"), Some(Overlap::Holds));
    assert_eq!(overlap("ws/cas", "ws/target"), None);
    assert_eq!(overlap("ws/target-cas", "ws/target"), None);
    assert_eq!(
        overlap(&root.join("cas").display().to_string(), "ws/target"),
        None
    );
}

/// A stored session whose YAML was edited after it was uploaded (its record
/// still names the old hash) is refused wherever it is read: `verify` took
/// the recorded hash on trust and blamed the sources.
#[test]
fn a_session_record_edited_outside_scone_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cas = LocalCas::create(dir.path()).expect("creates");
    let hash = cas.upload(&yaml("me", 10), None).expect("uploads");
    assert_eq!(
        cas.session("myPythonApp").expect("reads").map(|r| r.hash),
        Some(hash.clone())
    );
    let file = dir.path().join("sessions/myPythonApp.json");
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).expect("reads")).expect("json");
    let stored = record["yaml"].as_str().expect("yaml").to_string();
    let edited = stored.replacen("myPythonApp", "myPythonApq", 1);
    assert_ne!(edited, stored);
    record["yaml"] = serde_json::Value::String(edited);
    std::fs::write(&file, serde_json::to_vec(&record).expect("json")).expect("writes");
    let err = cas.session("myPythonApp").expect_err("edited");
    let text = err.to_string();
    assert!(
        text.contains("changed outside scone") && text.contains(&hash),
        "{text}"
    );
    assert!(
        cas.current_hash("myPythonApp").is_err(),
        "an upload reads it too"
    );
}

/// The generated secrets a new session no longer declares are the ones whose
/// values the upload deletes: named by `dropped_generated`, fixed values and
/// secrets still declared aside.
#[test]
fn the_generated_secrets_an_update_drops_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cas = LocalCas::open(dir.path()).expect("opens");
    cas.upload(&yaml("me", 10), None).expect("creates");
    let current = cas.session("myPythonApp").unwrap().expect("held");
    let mut without = input("me", 10);
    without.secrets.retain(|s| s.name == "key");
    let without = render(&without).expect("renders");
    let dropped = crate::cas::dropped_generated(&current.yaml, &without);
    assert_eq!(dropped, ["password"]);
    assert!(crate::cas::dropped_generated(&current.yaml, &yaml("you", 12)).is_empty());
    let fixed = "name: \"myPythonApp\"\nversion: \"0.3.10\"\nsecrets:\n  - name: \"pin\"\n    \
                 kind: \"ascii\"\n    value: \"1234\"\n";
    assert!(crate::cas::dropped_generated(fixed, &without).is_empty());
    cas.upload(&without, Some(&current.hash)).expect("updates");
    assert!(!cas
        .secret_values("myPythonApp")
        .unwrap()
        .contains_key("password"));
}
