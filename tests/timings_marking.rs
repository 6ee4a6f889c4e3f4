//! `--timings` marks each bar by how its step was satisfied (issue 25):
//! built, local hit (the local store answered), remote hit (the shared
//! cache answered; a real nginx WebDAV server, as in `tests/remote.rs`).
//! A small workspace is built cold (all built), in a second checkout from
//! the remote (all remote hits), after a one-file edit (that service's chain
//! built, the rest local hits), and with the edit put back (local hits where
//! the store has the results, remote hits where only the remote has them).
//! The page under `target/scone-timings/` is read as a file: each bar's
//! class, fill and tooltip word must be what happened, as the step messages
//! and the JSON `timings` message say.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use support::monorepo::{self, age_tree, generate, MonorepoOptions};
use support::{browser, finished, messages, Sandbox};

fn timings_message(msgs: &[serde_json::Value]) -> serde_json::Value {
    let found: Vec<_> = msgs.iter().filter(|m| m["reason"] == "timings").collect();
    assert_eq!(found.len(), 1, "one timings message");
    found[0].clone()
}

/// A bar of a timings page: its step id, class, fill and tooltip.
#[derive(Debug)]
struct Bar {
    step: String,
    class: String,
    fill: String,
    title: String,
}

/// The latest timings page of `root` and its bars, read from the file.
fn bars_on_page(root: &Path) -> (String, Vec<Bar>) {
    let page =
        std::fs::read_to_string(root.join("target/scone-timings/scone-timing.html")).unwrap();
    assert!(page.contains("<meta http-equiv=\"Content-Security-Policy\""));
    let bars = page
        .split("<rect class=\"bar ")
        .skip(1)
        .map(|rest| {
            let rect = rest.split("</rect>").next().unwrap();
            let tag = format!(" class=\"bar {}", rect.split('>').next().unwrap());
            let value = |name: &str| browser::attribute_values(&tag, name)[0].clone();
            let title = rect
                .split("<title>")
                .nth(1)
                .and_then(|t| t.split("</title>").next())
                .unwrap_or_default();
            Bar {
                step: value("data-step"),
                class: value("class"),
                fill: value("fill"),
                title: title.to_string(),
            }
        })
        .collect();
    (page, bars)
}

/// `kind:unit` → status of every step message.
fn step_status(msgs: &[serde_json::Value]) -> BTreeMap<String, String> {
    support::step_statuses(msgs)
        .into_iter()
        .map(|(step, unit, status)| (format!("{step}:{unit}"), status))
        .collect()
}

/// Every bar of the page of `root` is marked `expected` (the page's word
/// for it: built, local hit, remote hit), as the step messages say, and
/// there is one bar per step message.
/// Returns how many bars each status has.
fn assert_marked(
    root: &Path,
    msgs: &[serde_json::Value],
    expected: &[(&str, &str)],
) -> BTreeMap<String, usize> {
    let statuses = step_status(msgs);
    let (page, bars) = bars_on_page(root);
    // Steps reused unchecked (nothing they read changed) have a message but
    // did not run: no bar.
    let timings = timings_message(msgs);
    let reused = timings["reused"].as_u64().unwrap() as usize;
    assert_eq!(
        bars.len() + reused,
        statuses.len(),
        "one bar per step that ran"
    );
    // The JSON timings say the same as the page.
    let in_json: BTreeMap<String, String> = timings["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                format!(
                    "{}:{}",
                    s["step"].as_str().unwrap(),
                    s["unit"].as_str().unwrap()
                ),
                s["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let on_page: BTreeMap<String, String> = bars
        .iter()
        .map(|b| {
            (
                b.step.clone(),
                b.class.split(' ').nth(1).unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(on_page, in_json);
    for bar in &bars {
        let status = statuses
            .get(&bar.step)
            .unwrap_or_else(|| panic!("a bar for {} that did not run", bar.step));
        let word = expected
            .iter()
            .find(|(s, _)| s == status)
            .unwrap_or_else(|| panic!("{}: {status}, expected one of {expected:?}", bar.step))
            .1;
        let kind = bar.step.split(':').next().unwrap();
        assert_eq!(
            bar.class.split(' ').nth(1),
            Some(status.as_str()),
            "{bar:?}"
        );
        assert!(
            bar.title.starts_with(&format!("{}: {word} in ", bar.step)),
            "{bar:?}"
        );
        // Remote hits are hatched in their kind's colour; the others are
        // filled with it (a local hit paler, by its class).
        if status == "remote" {
            assert_eq!(bar.fill, format!("url(#remote-{kind})"), "{bar:?}");
            assert!(page.contains(&format!("<pattern id=\"remote-{kind}\"")));
        } else {
            assert!(bar.fill.starts_with('#'), "{bar:?}");
        }
    }
    let mut seen = BTreeMap::new();
    for (_, status) in on_page {
        *seen.entry(status).or_insert(0) += 1;
    }
    seen
}

#[test]
fn each_bar_is_marked_by_how_its_step_was_satisfied() {
    let server = support::webdav::Webdav::start();
    let url = server.url("cache");
    let checkout = || {
        let sb = Sandbox::new();
        let root = sb.path().join("repo");
        generate(
            &root,
            MonorepoOptions {
                services: 3,
                ..MonorepoOptions::default()
            },
        );
        age_tree(&root);
        (sb, root)
    };
    let build_with = |sb: &Sandbox, root: &Path, extra: &[&str]| {
        let out = sb
            .scone(root)
            .args(["build", "-f", "mesh.yml", "--message-format", "json"])
            .args(["--timings", "-j", "2"])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        messages(&out.stdout)
    };

    // A cold build, filling the remote cache: every step built.
    let (sa, a) = checkout();
    let msgs = build_with(&sa, &a, &["--remote-cache", &url, "--remote-cache-write"]);
    let steps = step_status(&msgs).len();
    assert!(steps >= 3 * 4, "{steps} steps");
    assert_eq!(finished(&msgs)["built"].as_u64(), Some(steps as u64));
    assert_eq!(
        assert_marked(&a, &msgs, &[("built", "built")]),
        BTreeMap::from([("built".to_string(), steps)])
    );

    // Another checkout, the same sources: every step a remote hit.
    let (sb, b) = checkout();
    let msgs = build_with(&sb, &b, &["--remote-cache", &url]);
    assert_eq!(finished(&msgs)["remote"].as_u64(), Some(steps as u64));
    assert_eq!(
        assert_marked(&b, &msgs, &[("remote", "remote hit")]),
        BTreeMap::from([("remote".to_string(), steps)])
    );

    // One file of service 1 changed in A: its chain (and the mesh's steps
    // that read it) is built, the rest is a local hit.
    let service = monorepo::service_name(1);
    let file = Path::new(&monorepo::service_folder(1)).join("lib/file-0.txt");
    let original = std::fs::read(a.join(&file)).unwrap();
    let write = |root: &Path, bytes: &[u8], mtime: i64| {
        std::fs::write(root.join(&file), bytes).unwrap();
        filetime::set_file_mtime(
            root.join(&file),
            filetime::FileTime::from_unix_time(mtime, 0),
        )
        .unwrap();
    };
    let edited = [original.as_slice(), b"one more line\n"].concat();
    write(&a, &edited, 1_600_000_100);
    let msgs = build_with(&sa, &a, &[]);
    let built: Vec<String> = step_status(&msgs)
        .into_iter()
        .filter(|(_, s)| s == "built")
        .map(|(id, _)| id)
        .collect();
    assert!(built.contains(&format!("copy:{service}")), "{built:?}");
    for other in [0, 2] {
        let other = monorepo::service_name(other);
        assert!(!built.iter().any(|id| id.ends_with(&other)), "{built:?}");
    }
    assert_eq!(
        assert_marked(&a, &msgs, &[("built", "built"), ("fresh", "local hit")]),
        BTreeMap::from([
            ("built".to_string(), built.len()),
            ("fresh".to_string(), steps - built.len())
        ])
    );

    // Put back: the same steps are answered by A's local store.
    write(&a, &original, 1_600_000_200);
    let msgs = build_with(&sa, &a, &[]);
    let statuses = step_status(&msgs);
    for id in &built {
        assert_eq!(
            statuses.get(id).map(String::as_str),
            Some("fresh"),
            "{statuses:?}"
        );
    }
    assert_eq!(
        assert_marked(&a, &msgs, &[("fresh", "local hit")]),
        BTreeMap::from([("fresh".to_string(), built.len())])
    );

    // The same in B, whose store got them from the remote (remote hits are
    // not kept in its action cache): built without the remote, and put back,
    // remote hits again beside local hits.
    write(&b, &edited, 1_600_000_100);
    let msgs = build_with(&sb, &b, &["--no-remote-cache"]);
    assert_eq!(
        assert_marked(&b, &msgs, &[("built", "built"), ("fresh", "local hit")]),
        BTreeMap::from([
            ("built".to_string(), built.len()),
            ("fresh".to_string(), steps - built.len())
        ])
    );
    write(&b, &original, 1_600_000_200);
    let msgs = build_with(&sb, &b, &["--remote-cache", &url]);
    let statuses = step_status(&msgs);
    for id in &built {
        assert_eq!(
            statuses.get(id).map(String::as_str),
            Some("remote"),
            "{statuses:?}"
        );
    }
    assert_eq!(
        assert_marked(
            &b,
            &msgs,
            &[("remote", "remote hit"), ("fresh", "local hit")],
        ),
        BTreeMap::from([
            ("fresh".to_string(), steps - built.len()),
            ("remote".to_string(), built.len())
        ])
    );
}
