//! `scone build --timings` (issue 25): the page of a 50-service build opens
//! in headless Chromium from a `file://` URL with nothing to fetch; the DOM
//! it renders holds one bar per step that ran, the critical path and the
//! summary; its numbers are the JSON step messages' (the time of each step
//! kind adds up to theirs); after a one-file change it draws the steps that
//! ran and counts the reused ones; a no-op build still writes a small page.
//! The page makes no network request (Chromium's net log), and a page that
//! does is caught. Screenshots are test artifacts
//! (`support::browser::artifacts`).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use support::browser;
use support::monorepo::{self, age_tree, generate, MonorepoOptions};
use support::{finished, messages, Sandbox};

const SERVICES: usize = 50;

/// `scone build --timings --message-format json -j 2` in `root`: its messages.
fn build(sb: &Sandbox, root: &Path) -> Vec<serde_json::Value> {
    let out = sb
        .scone(root)
        .args(["build", "-f", "mesh.yml", "--message-format", "json"])
        .args(["--timings", "-j", "2"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    messages(&out.stdout)
}

/// `kind:unit` → `ms` of every step message.
fn step_ms(msgs: &[serde_json::Value]) -> BTreeMap<String, u64> {
    msgs.iter()
        .filter(|m| m["reason"] == "step")
        .map(|m| {
            (
                format!(
                    "{}:{}",
                    m["step"].as_str().unwrap(),
                    m["unit"].as_str().unwrap()
                ),
                m["ms"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn timings_message(msgs: &[serde_json::Value]) -> serde_json::Value {
    let found: Vec<_> = msgs.iter().filter(|m| m["reason"] == "timings").collect();
    assert_eq!(found.len(), 1, "one timings message");
    found[0].clone()
}

/// The page holds nothing that could make a request.
fn assert_self_contained(page: &str) {
    assert!(
        page.contains("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'sha256-"),
        "no CSP forbidding every request"
    );
    for banned in [
        "<script", "src=", "href=", "<link", "<img", "@import", "http:", "https:",
    ] {
        assert!(!page.contains(banned), "the page holds `{banned}`");
    }
    // `url(` only for the page's own patterns.
    assert_eq!(page.matches("url(").count(), page.matches("url(#").count());
}

/// The attribute values of the elements of `dom` whose start tag holds `marker`.
fn tags_with<'a>(dom: &'a str, marker: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    for tag in dom.split('<').skip(1) {
        let tag = tag.split('>').next().unwrap_or("");
        if tag.contains(marker) {
            out.push(tag);
        }
    }
    out
}

/// What the DOM of a timings page shows.
struct Shown {
    /// `data-step` of every bar, with its class.
    bars: Vec<(String, String)>,
    critical: Vec<String>,
    critical_ms: u64,
    kinds: BTreeMap<String, u64>,
    ran: usize,
    reused: usize,
}

fn number(tag: &str, name: &str) -> u64 {
    browser::attribute_values(&format!(" {tag}"), name)[0]
        .parse()
        .unwrap()
}

fn shown(dom: &str) -> Shown {
    let bars = tags_with(dom, "class=\"bar ")
        .into_iter()
        .map(|tag| {
            let tag = format!(" {tag}");
            (
                browser::attribute_values(&tag, "data-step")[0].clone(),
                browser::attribute_values(&tag, "class")[0].clone(),
            )
        })
        .collect();
    let kinds = tags_with(dom, "data-kind=")
        .into_iter()
        .map(|tag| {
            (
                browser::attribute_values(&format!(" {tag}"), "data-kind")[0].clone(),
                number(tag, "data-ms"),
            )
        })
        .collect();
    let section = tags_with(dom, "id=\"critical-path\"");
    assert_eq!(section.len(), 1, "one critical path section");
    assert_eq!(tags_with(dom, "id=\"summary\"").len(), 1, "a summary");
    Shown {
        bars,
        critical: browser::attribute_values(dom, "data-critical-step"),
        critical_ms: number(section[0], "data-ms"),
        kinds,
        ran: number(tags_with(dom, "id=\"ran\"")[0], "data-count") as usize,
        reused: number(tags_with(dom, "id=\"reused\"")[0], "data-count") as usize,
    }
}

/// `(from, to)` edges of the step graph, by id.
fn edges(sb: &Sandbox, root: &Path) -> BTreeSet<(String, String)> {
    let out = sb
        .scone(root)
        .args(["graph", "-f", "mesh.yml", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let graph: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    graph["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["from"].as_str().unwrap().into(),
                e["to"].as_str().unwrap().into(),
            )
        })
        .collect()
}

/// The checks of one build's page, against its messages; returns the DOM.
fn check_page(
    root: &Path,
    msgs: &[serde_json::Value],
    graph: &BTreeSet<(String, String)>,
    screenshot: &str,
) -> String {
    let page_path = root.join("target/scone-timings/scone-timing.html");
    let page = std::fs::read_to_string(&page_path).expect("the timings page");
    assert_self_contained(&page);
    let timings = timings_message(msgs);
    let all_ms = step_ms(msgs);
    // The steps that ran: those of the timings message; every other step
    // message is a reused one (fresh, 0 ms), and there are `reused` of them.
    let ran: BTreeMap<String, u64> = timings["steps"]
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
                s["ms"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ran.len(),
        timings["steps"].as_array().unwrap().len(),
        "no step twice"
    );
    for (id, ms) in &ran {
        assert_eq!(
            all_ms.get(id),
            Some(ms),
            "{id}: the page's time is the step message's"
        );
    }
    let reused = finished(msgs)["reused"].as_u64().unwrap() as usize;
    assert_eq!(timings["reused"].as_u64().unwrap() as usize, reused);
    assert_eq!(all_ms.len(), ran.len() + reused);

    let dom = browser::dom(&page_path);
    let shown = shown(&dom);
    // One bar per step that ran.
    let bars: BTreeSet<String> = shown.bars.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(shown.bars.len(), ran.len(), "one bar per step that ran");
    assert_eq!(bars, ran.keys().cloned().collect::<BTreeSet<_>>());
    assert_eq!(shown.ran, ran.len());
    assert_eq!(shown.reused, reused);
    // The critical path: a chain of the graph, its total the sum of its
    // steps' times, each of its bars marked.
    let path: Vec<String> = timings["critical_path"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    assert!(!path.is_empty());
    assert_eq!(shown.critical, path);
    for pair in path.windows(2) {
        assert!(
            graph.contains(&(pair[0].clone(), pair[1].clone())),
            "{} → {} is no edge of the graph",
            pair[0],
            pair[1]
        );
    }
    let total: u64 = path.iter().map(|id| ran[id]).sum();
    assert_eq!(shown.critical_ms, total);
    assert_eq!(timings["critical_path"]["ms"].as_u64(), Some(total));
    for (id, class) in &shown.bars {
        assert_eq!(
            class.contains("critical"),
            path.contains(id),
            "{id}: {class}"
        );
    }
    // Honest: each kind's time on the page is the sum of the `ms` of every
    // step message of that kind (a reused step's is 0: it did not run).
    let mut per_kind: BTreeMap<String, u64> = BTreeMap::new();
    for (id, ms) in &all_ms {
        if !ran.contains_key(id) {
            assert_eq!(*ms, 0, "{id} was reused: it took no time");
        }
        *per_kind
            .entry(id.split(':').next().unwrap().to_string())
            .or_default() += ms;
    }
    for (kind, ms) in &per_kind {
        assert_eq!(
            shown.kinds.get(kind).copied().unwrap_or(0),
            *ms,
            "time of the {kind} steps: the page's against the step messages'"
        );
    }
    assert!(shown.kinds.keys().all(|k| per_kind.contains_key(k)));
    assert_eq!(
        shown.kinds.values().sum::<u64>(),
        all_ms.values().sum::<u64>()
    );

    let png = browser::screenshot(&page_path, screenshot, 1400, 1000);
    assert!(
        std::fs::metadata(&png).unwrap().len() > 10_000,
        "an empty screenshot?"
    );
    dom
}

#[test]
fn the_timings_page_of_a_50_service_build_in_chromium() {
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
    let graph = edges(&sb, &root);

    // Cold: every step ran.
    let msgs = build(&sb, &root);
    assert_eq!(
        finished(&msgs)["built"].as_u64(),
        Some(step_ms(&msgs).len() as u64)
    );
    let dom = check_page(&root, &msgs, &graph, "timings-50-services-cold.png");
    assert!(dom.contains("class=\"bar built"));
    let kept: Vec<_> = std::fs::read_dir(root.join("target/scone-timings"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("scone-timing-") && n.ends_with("Z.html"))
        .collect();
    assert_eq!(kept.len(), 1, "a timestamped copy: {kept:?}");

    // One file changed: its chain runs, the rest is reused, not drawn.
    let edited = root
        .join(monorepo::service_folder(7))
        .join("lib/file-0.txt");
    let mut bytes = std::fs::read(&edited).unwrap();
    bytes.extend_from_slice(b"one more line\n");
    std::fs::write(&edited, bytes).unwrap();
    filetime::set_file_mtime(
        &edited,
        filetime::FileTime::from_unix_time(1_600_000_100, 0),
    )
    .unwrap();
    let msgs = build(&sb, &root);
    let timings = timings_message(&msgs);
    assert!(finished(&msgs)["reused"].as_u64().unwrap() > 0);
    let dom = check_page(&root, &msgs, &graph, "timings-50-services-one-change.png");
    let step = |kind: &str, i: usize| format!("data-step=\"{kind}:{}\"", monorepo::service_name(i));
    for kind in ["copy", "layer", "image", "sign"] {
        assert!(
            dom.contains(&step(kind, 7)),
            "{kind} of the edited service ran"
        );
        assert!(
            !dom.contains(&step(kind, 8)),
            "{kind} of another service did not"
        );
    }
    assert!(timings["steps"].as_array().unwrap().len() < SERVICES);

    // Nothing changed: the fast path still writes a (small) page.
    let before = std::fs::metadata(root.join("target/scone-timings/scone-timing.html")).unwrap();
    let msgs = build(&sb, &root);
    assert_eq!(finished(&msgs)["fast_path"], true);
    let timings = timings_message(&msgs);
    assert_eq!(timings["fast_path"], true);
    assert_eq!(timings["steps"].as_array().map(Vec::len), Some(0));
    assert_eq!(timings["reused"], finished(&msgs)["fresh"]);
    let page =
        std::fs::read_to_string(root.join("target/scone-timings/scone-timing.html")).unwrap();
    assert_self_contained(&page);
    assert!(page.contains("id=\"fast-path\""));
    assert!(!page.contains("class=\"bar "));
    assert!(
        (page.len() as u64) < before.len(),
        "the no-op page is the smaller"
    );
}

#[test]
fn without_timings_no_page_and_no_message() {
    let sb = Sandbox::new();
    let root = sb.path().join("repo");
    generate(
        &root,
        MonorepoOptions {
            services: 2,
            ..MonorepoOptions::default()
        },
    );
    // Files older than the build: the build state trusts them, so the next
    // build can be the fast path.
    age_tree(&root);
    let msgs = sb.build_json(&root, &[]);
    assert!(msgs.iter().all(|m| m["reason"] != "timings"));
    assert!(!root.join("target/scone-timings").exists());
    // --timings is how a build reports, not what it makes: the next build
    // with it is the fast path.
    let msgs = build(&sb, &root);
    assert_eq!(finished(&msgs)["fast_path"], true);
    // The same build, counted alike by both messages (probe 53b: the
    // timings said 16 reused, build-finished 0).
    assert_eq!(
        timings_message(&msgs)["reused"],
        finished(&msgs)["reused"],
        "{msgs:?}"
    );
    let out = sb
        .scone(&root)
        .args(["build", "-f", "mesh.yml", "--timings"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Timings saved to ") && stderr.contains("scone-timing.html"),
        "{stderr}"
    );
}

/// A generated workspace of two services, and the JSON messages of `scone
/// ARGS -f mesh.yml --message-format json` on it, which must succeed.
fn two_services(sb: &Sandbox, args: &[&str]) -> (PathBuf, Vec<serde_json::Value>) {
    let root = sb.path().join("repo");
    generate(
        &root,
        MonorepoOptions {
            services: 2,
            ..MonorepoOptions::default()
        },
    );
    let out = sb
        .scone(&root)
        .args(args)
        .args(["-f", "mesh.yml", "--message-format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (root, messages(&out.stdout))
}

/// `-j 1000` on a build of a few steps: utilisation is of the workers the
/// build had (one per step), not of the 1,000 asked for, and the page says
/// how many there were (probe 53b: "0% busy").
#[test]
fn utilisation_is_of_the_workers_the_build_had() {
    let sb = Sandbox::new();
    let (root, msgs) = two_services(&sb, &["build", "--timings", "-j", "1000"]);
    let timings = timings_message(&msgs);
    let steps = timings["steps"].as_array().unwrap().len() as u64;
    assert_eq!(timings["jobs"], 1000);
    assert_eq!(timings["workers"], steps, "one worker per step: {timings}");
    // The mean of the busy curve over the workers that existed.
    let busy: Vec<(f64, f64)> = timings["busy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b[0].as_f64().unwrap(), b[1].as_f64().unwrap()))
        .collect();
    let area: f64 = busy.windows(2).map(|w| (w[1].0 - w[0].0) * w[0].1).sum();
    let span = busy.last().unwrap().0 - busy[0].0;
    let mean = area / (span * steps as f64);
    let utilisation = timings["utilisation"].as_f64().unwrap();
    assert!(
        (utilisation - mean).abs() < 0.01,
        "utilisation {utilisation}, busy mean {mean}: {timings}"
    );
    let page =
        std::fs::read_to_string(root.join("target/scone-timings/scone-timing.html")).unwrap();
    assert!(
        page.contains(&format!("-j 1000 ({steps} workers: one per step)")),
        "{page}"
    );
}

#[test]
fn the_request_check_catches_a_page_that_fetches() {
    // What `browser::dom` asserts of the timings page can fail: a page with
    // an image and a style sheet from the network asks for both.
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("fetches.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><head><link rel=\"stylesheet\" href=\"https://fonts.example.invalid/a.css\"></head>\
         <body><p>x</p><img src=\"http://images.example.invalid/x.png\"></body></html>",
    )
    .unwrap();
    let mut requests = browser::run(&page, &["--dump-dom".to_string()]).requests;
    requests.sort();
    assert_eq!(
        requests,
        [
            "http://images.example.invalid/x.png",
            "https://fonts.example.invalid/a.css"
        ]
    );
}

#[test]
fn apply_with_timings_times_the_upload_too() {
    let sb = Sandbox::new();
    let (root, msgs) = two_services(&sb, &["apply", "--timings", "-j", "2"]);
    let timings = timings_message(&msgs);
    assert_eq!(timings["command"], "apply");
    let ran: BTreeMap<String, u64> = timings["steps"]
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
                s["ms"].as_u64().unwrap(),
            )
        })
        .collect();
    // Every step message, the upload of the policy to the CAS among them.
    assert_eq!(ran, step_ms(&msgs));
    let upload = ran.keys().find(|id| id.starts_with("upload:")).cloned();
    let upload = upload.expect("the upload step ran");
    let page =
        std::fs::read_to_string(root.join("target/scone-timings/scone-timing.html")).unwrap();
    assert_self_contained(&page);
    assert!(page.contains("<h1>scone apply: timings</h1>"));
    assert!(page.contains(&format!("data-step=\"{upload}\"")));
    assert_eq!(page.matches("<rect class=\"bar ").count(), ran.len());
}

#[test]
fn a_net_log_cut_short_is_read_line_by_line() {
    let whole = "{\"constants\":{\"logEventTypes\":{\"URL_REQUEST_START_JOB\":7}},\n\"events\": [\n\
        {\"params\":{\"network_isolation_key\":\"file:// file://\",\"url\":\"http://a.invalid/x\"},\"phase\":1,\"source\":{\"id\":1},\"type\":7},\n\
        {\"params\":{\"network_isolation_key\":\"null null\",\"url\":\"http://update.invalid/\"},\"phase\":1,\"source\":{\"id\":2},\"type\":7},\n\
        {\"params\":{\"url\":\"http://b.invalid/\"},\"phase\":1,\"source\":{\"id\":3},\"type\":8},\n\
        ]}\n";
    // serde_json refuses the trailing comma: the same lines as a log cut short.
    assert_eq!(browser::page_requests(whole), ["http://a.invalid/x"]);
    let cut = &whole[..whole.find("{\"params\":{\"url\"").unwrap() + 5];
    assert_eq!(browser::page_requests(cut), ["http://a.invalid/x"]);
}
