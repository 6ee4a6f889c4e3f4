//! Tests of [`super`]: the checks of the paths a service manifest names.

use super::*;

fn located(s: &str) -> Located<String> {
    Located::new(s.to_string(), Pos { line: 3, column: 7 })
}

#[test]
fn a_copy_entry_another_already_brings_is_warned_of() {
    let at = |s: &str, line: u32| Located::new(s.to_string(), Pos { line, column: 7 });
    let copy = [
        at("app.py", 1),
        at("lib/a.py", 2),
        at("lib", 3),
        at("app.py", 4),
        at("library.py", 5),
    ];
    let told = repeated_copies(&copy, Path::new("service.yml"));
    let said: Vec<(u32, String)> = told
        .iter()
        .map(|d| (d.pos.line, d.message.clone()))
        .collect();
    assert_eq!(
        said,
        [
            (
                2,
                "copy path `lib/a.py` is inside `lib`, which is copied whole (line 3)".to_string()
            ),
            (
                4,
                "copy path `app.py` is listed already (line 1)".to_string()
            ),
        ],
        "`library.py` is not inside `lib`"
    );
    assert!(told
        .iter()
        .all(|d| d.level == crate::manifest::Level::Warning));
}

fn kinds(copy: &[&str], dir: &Path) -> Vec<ErrorKind> {
    let copy: Vec<_> = copy.iter().map(|s| located(s)).collect();
    let mut out = Vec::new();
    check_copy(&copy, dir, Path::new("s.yml"), &mut out, &mut Vec::new());
    out.iter().map(|d| d.kind).collect()
}

#[test]
fn lexical_escape() {
    assert!(escapes(Path::new("../x")));
    assert!(escapes(Path::new("a/../../x")));
    assert!(!escapes(Path::new("a/../x")));
    assert!(!escapes(Path::new("./a/b")));
}

#[test]
fn copy_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let svc = tmp.path().join("svc");
    std::fs::create_dir_all(svc.join("dir")).unwrap();
    std::fs::write(svc.join("ok.py"), "print(1)\n").unwrap();
    std::fs::write(tmp.path().join("outside.txt"), "secret\n").unwrap();
    std::os::unix::fs::symlink("../outside.txt", svc.join("link.txt")).unwrap();
    std::os::unix::fs::symlink("ok.py", svc.join("inner.py")).unwrap();
    std::os::unix::fs::symlink("../../outside.txt", svc.join("dir/escape")).unwrap();
    assert_eq!(kinds(&["ok.py", "inner.py", "./ok.py"], &svc), vec![]);
    assert_eq!(kinds(&["/etc/passwd"], &svc), vec![ErrorKind::AbsolutePath]);
    assert_eq!(
        kinds(&["../outside.txt"], &svc),
        vec![ErrorKind::PathEscape]
    );
    assert_eq!(kinds(&["link.txt"], &svc), vec![ErrorKind::PathEscape]);
    assert_eq!(kinds(&["dir"], &svc), vec![ErrorKind::PathEscape]);
    assert_eq!(kinds(&["nope.py"], &svc), vec![ErrorKind::MissingFile]);
    assert_eq!(kinds(&[""], &svc), vec![ErrorKind::InvalidValue]);
    // A link to a folder outside, named with a trailing slash (which looks
    // through the link) or inside a subfolder, still escapes.
    std::fs::create_dir_all(tmp.path().join("outdir")).unwrap();
    std::os::unix::fs::symlink("../outdir", svc.join("linkdir")).unwrap();
    std::os::unix::fs::symlink("../../outdir", svc.join("dir/deeper")).unwrap();
    for raw in [
        "linkdir",
        "linkdir/",
        "./linkdir",
        "dir/deeper",
        "dir/deeper/",
    ] {
        assert_eq!(kinds(&[raw], &svc), vec![ErrorKind::PathEscape], "{raw}");
    }
}

/// The link a copied folder is refused for is the first in a sorted walk:
/// file-name order, each folder's content right after it; links that stay
/// inside, and unreadable folders, do not count.
#[test]
fn the_first_escaping_link_of_a_folder_is_named() {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let tmp = tempfile::tempdir().unwrap();
    let svc = tmp.path().join("svc");
    let lib = svc.join("lib");
    for d in ["a", "b/inner", "c", "locked"] {
        std::fs::create_dir_all(lib.join(d)).unwrap();
    }
    std::fs::write(tmp.path().join("out.txt"), "x").unwrap();
    std::fs::write(lib.join("a/f.txt"), "x").unwrap();
    symlink("f.txt", lib.join("a/stays")).unwrap();
    symlink("../../../../out.txt", lib.join("b/inner/z-escape")).unwrap();
    symlink("../../out.txt", lib.join("c-escape")).unwrap();
    symlink("../../../out.txt", lib.join("c/escape")).unwrap();
    symlink("nowhere", lib.join("b/dangling")).unwrap();
    let canonical = svc.canonicalize().unwrap();
    assert_eq!(
        problem_inside(&lib.canonicalize().unwrap(), &canonical)
            .map(|p| p.0)
            .as_deref(),
        Some("b/inner/z-escape")
    );
    std::fs::remove_file(lib.join("b/inner/z-escape")).unwrap();
    // `c` sorts before `c-escape`, and its content comes right after it.
    assert_eq!(
        problem_inside(&lib, &canonical).map(|p| p.0).as_deref(),
        Some("c/escape")
    );
    std::fs::remove_file(lib.join("c/escape")).unwrap();
    assert_eq!(
        problem_inside(&lib, &canonical).map(|p| p.0).as_deref(),
        Some("c-escape")
    );
    std::fs::remove_file(lib.join("c-escape")).unwrap();
    assert_eq!(problem_inside(&lib, &canonical), None);
    let copy = [located("lib")];
    let mut out = Vec::new();
    check_copy(&copy, &svc, Path::new("s.yml"), &mut out, &mut Vec::new());
    assert!(out.is_empty(), "{out:?}");
    symlink("../../../out.txt", lib.join("locked/escape")).unwrap();
    let mut out = Vec::new();
    check_copy(&copy, &svc, Path::new("s.yml"), &mut out, &mut Vec::new());
    assert_eq!(out.len(), 1);
    assert!(
        out[0]
            .message
            .ends_with("outside the service folder: locked/escape"),
        "{}",
        out[0].message
    );
    std::fs::set_permissions(lib.join("locked"), std::fs::Permissions::from_mode(0o000)).unwrap();
    // root reads any folder: only check the skip where permissions hold.
    if std::fs::read_dir(lib.join("locked")).is_err() {
        assert_eq!(problem_inside(&lib, &canonical), None);
    }
    std::fs::set_permissions(lib.join("locked"), std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Diagnostics as `(line, message)`.
type Lines = Vec<(u32, String)>;

/// Errors and warnings of `copy` in `svc`.
fn told(copy: &[&str], svc: &Path) -> (Lines, Lines) {
    let copy: Vec<_> = copy
        .iter()
        .enumerate()
        .map(|(i, s)| {
            Located::new(
                s.to_string(),
                Pos {
                    line: i as u32 + 1,
                    column: 7,
                },
            )
        })
        .collect();
    let (mut out, mut warnings) = (Vec::new(), Vec::new());
    check_copy(&copy, svc, Path::new("s.yml"), &mut out, &mut warnings);
    let lines = |d: Vec<Diagnostic>| d.into_iter().map(|d| (d.pos.line, d.message)).collect();
    (lines(out), lines(warnings))
}

/// A `copy` entry that is a symlink is the link: what it points to is
/// not looked into; an entry through it is refused, and one whose target
/// no entry copies is warned of.
#[test]
fn a_copy_entry_that_is_a_symlink_is_taken_as_the_link() {
    use std::os::unix::fs::symlink;
    let tmp = tempfile::tempdir().unwrap();
    let svc = tmp.path().join("svc");
    std::fs::create_dir_all(svc.join("d2/sub")).unwrap();
    std::fs::write(svc.join("d2/y"), "2").unwrap();
    std::fs::write(svc.join("app.py"), "x").unwrap();
    // A FIFO in the folder the link points to: not copied, not refused.
    assert!(std::process::Command::new("mkfifo")
        .arg(svc.join("d2/pipe"))
        .status()
        .unwrap()
        .success());
    symlink("d2", svc.join("data")).unwrap();
    symlink("../../app.py", svc.join("d2/sub/app")).unwrap();
    std::fs::create_dir_all(svc.join("other")).unwrap();
    std::fs::write(svc.join("other/x"), "x").unwrap();
    symlink("../../other", svc.join("d2/sub/lnk")).unwrap();
    symlink("/nowhere/at/all", svc.join("gone")).unwrap();

    let (errors, warnings) = told(&["data"], &svc);
    assert_eq!(errors, []);
    assert_eq!(
        warnings,
        [(1, "copy path `data` is a symlink to `d2`, which is not copied: in the image the link leads nowhere".to_string())]
    );
    std::fs::remove_file(svc.join("d2/pipe")).unwrap();
    // With a trailing `/` too; and its target copied (whole, or in part):
    // no warning.
    for copy in [&["data/", "d2"][..], &["data", "d2/y"][..]] {
        assert_eq!(told(copy, &svc), (vec![], vec![]), "{copy:?}");
    }
    // Through the link: the image cannot hold `data/y` under the link.
    let (errors, warnings) = told(&["d2", "data", "data/y"], &svc);
    assert_eq!(
        errors,
        [(3, "copy path `data/y` goes through `data`, a symlink copied as a symlink (line 2): the image cannot hold a file under a link".to_string())]
    );
    assert_eq!(warnings, [], "no `inside data, copied whole` warning");
    // A link inside a copied folder, the same.
    let (errors, _) = told(&["d2", "d2/sub/lnk/x"], &svc);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].1.contains(
            "goes through `d2/sub/lnk`, a symlink that `d2` copies as a symlink (line 1)"
        ),
        "{errors:?}"
    );
    // A link to a file, listed beside it: fine; a dangling one refused.
    assert_eq!(told(&["d2/sub/app", "app.py"], &svc), (vec![], vec![]));
    assert_eq!(kinds(&["gone"], &svc), vec![ErrorKind::MissingFile]);
}

#[test]
fn a_name_or_link_target_that_is_not_utf8_in_a_copied_folder_is_refused() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let svc = tmp.path().join("svc");
    std::fs::create_dir_all(svc.join("data/sub")).unwrap();
    std::fs::write(svc.join("data/a.txt"), "a").unwrap();
    let bad = svc.join("data/sub").join(OsStr::from_bytes(b"n-\xff\\x"));
    std::fs::write(&bad, "A").unwrap();
    let (errors, _) = told(&["data"], &svc);
    assert_eq!(
        errors,
        [(
            1,
            r"copy folder `data` holds a name that is not UTF-8: sub/n-\xff\\x".to_string()
        )]
    );
    assert_eq!(kinds(&["data"], &svc), vec![ErrorKind::InvalidValue]);
    std::fs::remove_file(&bad).unwrap();
    assert_eq!(told(&["data"], &svc), (vec![], vec![]));
    // A link whose target is not UTF-8, inside a copied folder or listed.
    std::os::unix::fs::symlink(OsStr::from_bytes(b"a\xfe"), svc.join("data/l")).unwrap();
    let (errors, _) = told(&["data"], &svc);
    assert_eq!(
        errors,
        [(
            1,
            r"copy folder `data` holds a symlink whose target is not UTF-8: l -> a\xfe".to_string()
        )]
    );
    std::os::unix::fs::symlink(OsStr::from_bytes(b"data/a.txt\xfe"), svc.join("l2")).unwrap();
    assert_eq!(
        kinds(&["l2"], &svc),
        vec![ErrorKind::MissingFile],
        "dangling first"
    );
    assert_eq!(escaped(Path::new("é/\u{1b}")), r"é/\u{1b}");
}
