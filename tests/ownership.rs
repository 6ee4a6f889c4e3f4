//! The local CAS is shared by every project of a user: a session belongs to
//! the project whose apply created it. Through the binary: a first apply of a
//! namespace another project uses is refused, naming both projects and the
//! command that takes it over; taken over, the first project is refused the
//! same way. A session changed since a project's last apply names that
//! project's `scone.lock` and the command that accepts the change — never a
//! hand edit of the lock. A session this project sent after the apply its
//! `scone.lock` records (an apply stopped before it wrote the lock) is no
//! such change: the next apply updates it, with a note. A session a
//! `scone cas serve` client created is its certificate's: a project's apply
//! is refused, and a take-over cuts the certificate out.

mod support;

use std::path::{Path, PathBuf};
use support::Sandbox;

/// A copy of the hello-world example whose mesh gives `API_USER` = `user`
/// (so two projects make different sessions of one namespace).
fn project(sb: &Sandbox, name: &str, user: &str) -> PathBuf {
    let dir = sb.hello_world(name);
    set_user(&dir, user);
    dir
}

fn set_user(dir: &Path, user: &str) {
    let mesh = dir.join("mesh.yml");
    let text = std::fs::read_to_string(&mesh).unwrap();
    let start = text.find("    value: ").expect("the API_USER value");
    let end = start + text[start..].find('\n').unwrap();
    let text = format!("{}    value: {user}{}", &text[..start], &text[end..]);
    std::fs::write(&mesh, text).unwrap();
}

fn apply(sb: &Sandbox, dir: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let out = sb
        .scone(dir)
        .args(["apply", "-f", "mesh.yml"])
        .args(extra)
        .output()
        .expect("scone runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The session's hash on the sandbox's local CAS.
fn cas_hash(sb: &Sandbox) -> String {
    let out = sb
        .scone(sb.path())
        .args(["cas", "session", "myPythonApp"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("# hash: "))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|| panic!("no hash in `scone cas session`: {text}"))
}

fn lock_hash(dir: &Path) -> String {
    let lock: toml::Value =
        toml::from_str(&std::fs::read_to_string(dir.join("scone.lock")).unwrap()).unwrap();
    lock["session"]["myPythonApp"]["cas_hash"]
        .as_str()
        .unwrap()
        .to_string()
}

fn canonical(dir: &Path) -> String {
    dir.canonicalize().unwrap().display().to_string()
}

#[test]
fn another_project_s_session_is_refused_until_taken_over() {
    let sb = Sandbox::new();
    let one = project(&sb, "one", "alice");
    let two = project(&sb, "two", "bob");
    let (code, stderr) = apply(&sb, &one, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let ones = cas_hash(&sb);

    // Two's first apply of the same namespace: refused, naming both projects
    // and the command; one's session is untouched.
    let (code, stderr) = apply(&sb, &two, &[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&canonical(&one)),
        "names the owner:\n{stderr}"
    );
    assert!(
        stderr.contains(&canonical(&two)),
        "names this project:\n{stderr}"
    );
    assert!(
        stderr.contains("scone apply --take-over myPythonApp"),
        "{stderr}"
    );
    assert_eq!(cas_hash(&sb), ones, "one's session is as it was");
    let (code, stderr) = apply(&sb, &one, &[]);
    assert_eq!(code, Some(0), "one goes on applying: {stderr}");

    // Taken over: two's session replaces one's, and one is refused.
    let (code, stderr) = apply(&sb, &two, &["--take-over", "myPythonApp"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_ne!(cas_hash(&sb), ones);
    assert_eq!(lock_hash(&two), cas_hash(&sb));
    let (code, stderr) = apply(&sb, &two, &[]);
    assert_eq!(code, Some(0), "two owns it now: {stderr}");
    let (code, stderr) = apply(&sb, &one, &[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(&canonical(&two)), "{stderr}");
    assert!(
        stderr.contains("scone apply --take-over myPythonApp"),
        "{stderr}"
    );

    // A name no mesh has is a usage error.
    let (code, stderr) = apply(&sb, &one, &["--take-over", "myPythonAp"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("did you mean `myPythonApp`"), "{stderr}");
}

/// `scone apply --plan`'s text (stdout) and exit code.
fn plan(sb: &Sandbox, dir: &Path) -> (Option<i32>, String) {
    let out = sb
        .scone(dir)
        .args(["apply", "--plan", "-f", "mesh.yml"])
        .output()
        .expect("scone runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The stored session, as `scone cas session` shows it.
fn cas_session(sb: &Sandbox) -> String {
    let out = sb
        .scone(sb.path())
        .args(["cas", "session", "myPythonApp"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An apply the CAS took but that was stopped before it wrote `scone.lock`
/// (kill -9, a CI timeout): the session on CAS is this project's, made from
/// the one `scone.lock` records. After an edit the next apply updates it
/// from there with a note (it was refused, asking for `--take-over`), and
/// records the new hash; the one after uploads nothing.
#[test]
fn a_session_sent_by_an_apply_stopped_before_it_wrote_scone_lock_is_updated() {
    let sb = Sandbox::new();
    let dir = project(&sb, "one", "alice");
    let (code, stderr) = apply(&sb, &dir, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let old_lock = std::fs::read(dir.join("scone.lock")).unwrap();
    set_user(&dir, "bob");
    let (code, stderr) = apply(&sb, &dir, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let sent = cas_hash(&sb);
    // As if that apply had been killed after the upload: scone.lock is the
    // first apply's.
    std::fs::write(dir.join("scone.lock"), &old_lock).unwrap();

    set_user(&dir, "carol");
    let (code, stdout) = plan(&sb, &dir);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "note: CAS's session myPythonApp is {sent}, which this project sent after"
        )),
        "the plan says what apply does:\n{stdout}"
    );
    assert!(!stdout.contains("someone else"), "{stdout}");
    // verify tells the same story: not a change by someone else.
    let out = sb
        .scone(&dir)
        .args(["verify", "-f", "mesh.yml"])
        .output()
        .expect("scone runs");
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "carol is not applied yet:\n{report}"
    );
    assert!(
        report.contains("CAS holds a session this project sent after the apply scone.lock records"),
        "{report}"
    );
    assert!(!report.contains("someone else"), "{report}");

    let (code, stderr) = apply(&sb, &dir, &[]);
    assert_eq!(code, Some(0), "not refused:\n{stderr}");
    assert!(
        stderr.contains(&format!("note: upload:myPythonApp: CAS held {sent}, a session this project sent after the apply")),
        "a note says so:\n{stderr}"
    );
    assert!(stderr.contains("(an interrupted apply?)"), "{stderr}");
    assert!(!stderr.contains("--take-over"), "{stderr}");
    let now = cas_hash(&sb);
    assert_ne!(now, sent, "carol's session was uploaded");
    assert!(
        cas_session(&sb).contains(&format!("predecessor: \"{sent}\"")),
        "made from the session on CAS:\n{}",
        cas_session(&sb)
    );
    assert_eq!(lock_hash(&dir), now, "scone.lock records it");

    let lock = std::fs::read(dir.join("scone.lock")).unwrap();
    let (code, stderr) = apply(&sb, &dir, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("note: upload"), "{stderr}");
    assert_eq!(cas_hash(&sb), now, "nothing uploaded");
    assert_eq!(std::fs::read(dir.join("scone.lock")).unwrap(), lock);
}

#[test]
fn a_session_changed_since_the_last_apply_names_scone_lock_and_the_command() {
    let sb = Sandbox::new();
    let dir = project(&sb, "one", "alice");
    let (code, stderr) = apply(&sb, &dir, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let old_lock = std::fs::read(dir.join("scone.lock")).unwrap();
    // The session moves on twice (e.g. from another checkout of this
    // folder's history), and scone.lock is back at the first apply: the
    // session on CAS is not made from the one scone.lock records.
    set_user(&dir, "bob");
    let (code, stderr) = apply(&sb, &dir, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    set_user(&dir, "dave");
    let (code, stderr) = apply(&sb, &dir, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let moved = cas_hash(&sb);
    std::fs::write(dir.join("scone.lock"), &old_lock).unwrap();

    set_user(&dir, "carol");
    let (code, stdout) = plan(&sb, &dir);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("someone else changed it"), "{stdout}");
    assert!(
        stdout.contains("scone apply --take-over myPythonApp"),
        "{stdout}"
    );
    let (code, stderr) = apply(&sb, &dir, &[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("changed since this project's last apply"),
        "{stderr}"
    );
    assert!(!stderr.contains("note:"), "{stderr}");
    let lock = dir.join("scone.lock").canonicalize().unwrap();
    assert!(
        stderr.contains(&lock.display().to_string()),
        "names the lock:\n{stderr}"
    );
    assert!(
        stderr.contains("scone apply --take-over myPythonApp"),
        "offers the command:\n{stderr}"
    );
    assert!(
        !stderr.contains("set the session's hash in scone.lock"),
        "no hand edit:\n{stderr}"
    );
    assert_eq!(cas_hash(&sb), moved, "nothing was uploaded");

    let (code, stderr) = apply(&sb, &dir, &["--take-over", "myPythonApp"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_ne!(cas_hash(&sb), moved);
    assert_eq!(lock_hash(&dir), cas_hash(&sb));
    let (code, stderr) = apply(&sb, &dir, &[]);
    assert_eq!(code, Some(0), "and applies go on: {stderr}");
}

/// A session made from the one `scone.lock` records that the CAS does not
/// record as sent by this project's apply (by an older scone, through
/// `scone cas serve`, or by another local client): another copy of this
/// project's history could have made it, so it is refused as a change since
/// the last apply.
#[test]
fn a_session_made_from_the_locked_one_but_not_this_project_s_is_refused() {
    let sb = Sandbox::new();
    let dir = project(&sb, "one", "alice");
    let (code, stderr) = apply(&sb, &dir, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let old_lock = std::fs::read(dir.join("scone.lock")).unwrap();
    set_user(&dir, "bob");
    let (code, stderr) = apply(&sb, &dir, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let moved = cas_hash(&sb);
    std::fs::write(dir.join("scone.lock"), &old_lock).unwrap();
    // The record no longer names its project (not part of the session's hash).
    let file = sb.path().join("cas/sessions/myPythonApp.json");
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert!(record["sent_by"].is_string(), "{record}");
    record.as_object_mut().unwrap().remove("sent_by");
    std::fs::write(&file, serde_json::to_vec_pretty(&record).unwrap()).unwrap();

    set_user(&dir, "carol");
    let (code, stdout) = plan(&sb, &dir);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("someone else changed it"), "{stdout}");
    assert!(
        stdout.contains("scone apply --take-over myPythonApp"),
        "{stdout}"
    );
    let (code, stderr) = apply(&sb, &dir, &[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the CAS session `myPythonApp` changed since this project's last apply: it is at {moved}"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("scone apply --take-over myPythonApp"),
        "{stderr}"
    );
    assert_eq!(cas_hash(&sb), moved, "nothing was uploaded");
}

/// `scone cas serve` serves the very folder local applies use. A client
/// (any self-signed certificate) creates a session under the name a project
/// will use: the project's apply is refused, naming the certificate and the
/// command; `scone cas session` shows the certificate; once taken over, the
/// client can neither read the session (values, salt) nor update it.
#[test]
fn a_session_a_served_client_made_is_refused_and_a_take_over_cuts_the_client_out() {
    use scone::cas::session::with_predecessor;
    use scone::cas::tls::ClientIdentity;
    use support::cas_server::{post_session, status_of, Server};

    let server = Server::start();
    let squatter = ClientIdentity::generate("B").unwrap();
    let fingerprint = squatter.fingerprint().unwrap();
    let squat = "name: \"myPythonApp\"\nversion: \"0.3.10\"\nservices: []\n";
    let answer = server.raw(&squatter, &post_session(squat));
    assert_eq!(status_of(&answer), Some(201), "{answer}");

    let sb = Sandbox::new();
    let dir = project(&sb, "one", "alice");
    let served_apply = |extra: &[&str]| {
        let out = sb
            .scone(&dir)
            .env("SCONE_CAS_DIR", &server.cas_dir)
            .args(["apply", "-f", "mesh.yml"])
            .args(extra)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), stderr)
    };
    let show = || {
        let out = sb
            .scone(&dir)
            .args(["cas", "session", "myPythonApp", "--cas-dir"])
            .arg(&server.cas_dir)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let squatted = show();
    assert!(
        squatted.contains(&format!("# owner: client certificate {fingerprint}")),
        "{squatted}"
    );

    let (code, stderr) = served_apply(&[]);
    assert_eq!(
        code,
        Some(1),
        "the client's session is not adopted:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("belongs to the client certificate {fingerprint}")),
        "{stderr}"
    );
    assert!(
        stderr.contains("scone apply --take-over myPythonApp"),
        "{stderr}"
    );
    assert_eq!(show(), squatted, "nothing was uploaded");

    let (code, stderr) = served_apply(&["--take-over", "myPythonApp"]);
    assert_eq!(code, Some(0), "{stderr}");
    let ours = show();
    assert!(!ours.contains("# owner:"), "{ours}");
    let hash = ours
        .lines()
        .find_map(|l| l.strip_prefix("# hash: "))
        .unwrap()
        .trim()
        .to_string();
    let password = server.password();

    let get = "GET /v1/sessions/myPythonApp HTTP/1.1\r\nHost: 127.0.0.1\r\n\
               Connection: close\r\n\r\n";
    let read = server.raw(&squatter, get.as_bytes());
    assert_eq!(status_of(&read), Some(403), "{read}");
    let update = with_predecessor(squat, Some(&hash));
    let write = server.raw(&squatter, &post_session(&update));
    assert_eq!(status_of(&write), Some(403), "{write}");
    for answer in [&read, &write] {
        assert!(!answer.contains(&password), "{answer}");
    }
    assert_eq!(show(), ours, "the session is the project's as applied");
    let (code, stderr) = served_apply(&[]);
    assert_eq!(code, Some(0), "the project applies on: {stderr}");
}
