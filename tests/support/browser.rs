//! Test support: Debian's headless Chromium (installed by
//! `scripts/ci-deps.sh`), started as root with no sandbox, no GPU, a fresh
//! profile and every host name mapped to nothing, to open a page or picture
//! of scone's from a `file://` URL and read back the DOM it rendered, the
//! requests the page made (from Chromium's net log) or a screenshot.
//!
//! Screenshots are test artifacts: they go to `SCONE_TEST_ARTIFACTS` when it
//! is set (`.ci/run` sets it, and keeps the folder), else under cargo's
//! `CARGO_TARGET_TMPDIR`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long one Chromium run may take (a loaded 2-core machine).
const DEADLINE: Duration = Duration::from_secs(120);

/// The Chromium binary on the PATH; panics with what to run if there is none.
pub fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser"] {
        if let Some(path) = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        }) {
            return path;
        }
    }
    panic!("chromium is not installed: run scripts/ci-deps.sh (as root)");
}

/// The folder screenshots go to (made if missing).
pub fn artifacts() -> PathBuf {
    let dir = std::env::var_os("SCONE_TEST_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("artifacts"));
    std::fs::create_dir_all(&dir).expect("the artifacts folder");
    dir
}

/// What one run of Chromium on a page gave.
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    /// The URLs of the network requests the page made (not Chromium's own
    /// background ones), from the net log.
    pub requests: Vec<String>,
}

/// Runs headless Chromium on `file` with `extra` flags. A browser that dies
/// of a signal (a crash, not a failed check: the page is static) is started
/// once more, with a fresh profile, and says so on stderr.
pub fn run(file: &Path, extra: &[String]) -> Run {
    let url = format!(
        "file://{}",
        file.canonicalize().expect("the page").display()
    );
    for attempt in 1..=2 {
        match run_once(&url, extra) {
            Ok(run) => return run,
            Err((status, stderr)) if attempt == 1 && status.code().is_none() => {
                eprintln!("chromium died on {url} ({status}), starting it once more:\n{stderr}");
            }
            Err((status, stderr)) => panic!("chromium failed on {url}: {status}\n{stderr}"),
        }
    }
    unreachable!("the second attempt returns or panics")
}

/// One run of Chromium on `url`: what it gave, or how it ended and its
/// stderr.
fn run_once(url: &str, extra: &[String]) -> Result<Run, (ExitStatus, String)> {
    let scratch = tempfile::tempdir().expect("a folder for chromium");
    let stdout_path = scratch.path().join("stdout");
    let stderr_path = scratch.path().join("stderr");
    let net_log = scratch.path().join("net-log.json");
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
        ])
        .arg(format!(
            "--user-data-dir={}",
            scratch.path().join("profile").display()
        ))
        .arg(format!("--log-net-log={}", net_log.display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("starting chromium");
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for chromium") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish {url} in {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    if !status.success() {
        return Err((status, stderr));
    }
    let log = std::fs::read_to_string(&net_log).expect("chromium wrote its net log");
    Ok(Run {
        stdout,
        stderr,
        requests: page_requests(&log),
    })
}

/// The URLs of the requests a `file://` page made, from a Chromium net log
/// (`--log-net-log`): every URL request started for a frame whose top site
/// is `file://` (its network isolation key). Chromium's own requests (time,
/// component updates, accounts) have another key, and are left out.
pub fn page_requests(net_log: &str) -> Vec<String> {
    let (constants, events) = net_log_parts(net_log);
    let start_job = constants["logEventTypes"]["URL_REQUEST_START_JOB"]
        .as_u64()
        .expect("the net log names URL_REQUEST_START_JOB");
    events
        .iter()
        .filter(|e| e["type"].as_u64() == Some(start_job))
        .filter(|e| {
            e["params"]["network_isolation_key"]
                .as_str()
                .is_some_and(|key| key.starts_with("file://"))
        })
        .filter_map(|e| e["params"]["url"].as_str().map(String::from))
        .collect()
}

/// A net log's constants and events. Chromium writes it a line per event
/// and closes it at exit; a log left unclosed (Chromium killed while it
/// shut down) is read line by line.
fn net_log_parts(net_log: &str) -> (serde_json::Value, Vec<serde_json::Value>) {
    if let Ok(mut log) = serde_json::from_str::<serde_json::Value>(net_log) {
        let events = match log["events"].take() {
            serde_json::Value::Array(events) => events,
            _ => Vec::new(),
        };
        return (log["constants"].take(), events);
    }
    let mut lines = net_log.lines();
    let first = lines.next().unwrap_or_default().trim_end_matches(',');
    let head: serde_json::Value = serde_json::from_str(&format!("{first}}}"))
        .unwrap_or_else(|e| panic!("the net log's first line is not its constants: {e}"));
    let events = lines
        .filter_map(|line| serde_json::from_str(line.trim_end_matches(',')).ok())
        .filter(|e: &serde_json::Value| e.get("type").is_some() && e.get("source").is_some())
        .collect();
    (head["constants"].clone(), events)
}

/// The DOM of `file` once loaded, as Chromium serialises it; asserts the
/// page made no network request.
pub fn dom(file: &Path) -> String {
    let run = run(file, &["--dump-dom".to_string()]);
    assert!(
        run.stdout.contains("<html"),
        "no DOM came back for {}",
        file.display()
    );
    assert_eq!(
        run.requests,
        Vec::<String>::new(),
        "{} made network requests",
        file.display()
    );
    run.stdout
}

/// A screenshot of `file` in a `width`×`height` window, written to
/// [`artifacts`]`/name`; returns its path.
pub fn screenshot(file: &Path, name: &str, width: u32, height: u32) -> PathBuf {
    let png = artifacts().join(name);
    let _ = std::fs::remove_file(&png);
    run(
        file,
        &[
            format!("--screenshot={}", png.display()),
            format!("--window-size={width},{height}"),
        ],
    );
    let bytes = std::fs::read(&png).expect("chromium wrote the screenshot");
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        png.display()
    );
    png
}

/// How a picture rendered: as an `<img>` of a page of the test's own, drawn
/// into a canvas.
#[derive(Debug, PartialEq)]
pub struct Rendered {
    /// Its size as the browser decoded it.
    pub width: u64,
    pub height: u64,
    /// Pixels that are not white.
    pub inked: u64,
    /// Per colour asked about (`#rrggbb`), how many pixels have it exactly.
    pub colours: Vec<(String, u64)>,
}

/// Renders the SVG `picture` in Chromium (an image, as a README shows it)
/// and counts its pixels; `None` if the browser could not decode it.
pub fn render_svg(picture: &str, colours: &[&str]) -> Option<Rendered> {
    use base64::Engine as _;
    let dir = tempfile::tempdir().expect("a folder for the page");
    let page = dir.path().join("render.html");
    let data = base64::engine::general_purpose::STANDARD.encode(picture);
    let wanted = colours.join(" ");
    // Counts the pixels of the decoded image; the result is an attribute of
    // the body, read back from the dumped DOM.
    let html = format!(
        "<!DOCTYPE html><html><body data-colours=\"{wanted}\"><script>\n\
         function done(img) {{\n\
           var c = document.createElement('canvas');\n\
           c.width = img.naturalWidth; c.height = img.naturalHeight;\n\
           var g = c.getContext('2d');\n\
           g.fillStyle = '#fff'; g.fillRect(0, 0, c.width, c.height);\n\
           g.drawImage(img, 0, 0);\n\
           var d = g.getImageData(0, 0, c.width, c.height).data;\n\
           var wanted = document.body.dataset.colours.split(' ').filter(Boolean);\n\
           var counts = {{}}; wanted.forEach(function (w) {{ counts[w] = 0; }});\n\
           var inked = 0;\n\
           for (var i = 0; i < d.length; i += 4) {{\n\
             if (d[i] < 250 || d[i + 1] < 250 || d[i + 2] < 250) inked++;\n\
             var hex = '#' + ((1 << 24) | (d[i] << 16) | (d[i + 1] << 8) | d[i + 2]).toString(16).slice(1);\n\
             if (hex in counts) counts[hex]++;\n\
           }}\n\
           document.body.setAttribute('data-result', JSON.stringify({{\n\
             width: img.naturalWidth, height: img.naturalHeight, inked: inked,\n\
             colours: wanted.map(function (w) {{ return [w, counts[w]]; }}) }}));\n\
         }}\n\
         </script><img onload=\"done(this)\" onerror=\"document.body.setAttribute('data-result', 'null')\" \
         src=\"data:image/svg+xml;base64,{data}\"></body></html>\n"
    );
    std::fs::write(&page, html).expect("writing the page");
    let dom = dom(&page);
    let result = attribute_values(&dom, "data-result");
    assert_eq!(result.len(), 1, "the page ran: {:.400}", dom);
    let value: serde_json::Value = serde_json::from_str(&result[0]).expect("JSON");
    if value.is_null() {
        return None;
    }
    let number = |v: &serde_json::Value| v.as_u64().expect("a count");
    Some(Rendered {
        width: number(&value["width"]),
        height: number(&value["height"]),
        inked: number(&value["inked"]),
        colours: value["colours"]
            .as_array()
            .expect("colours")
            .iter()
            .map(|pair| {
                (
                    pair[0].as_str().expect("a colour").to_string(),
                    number(&pair[1]),
                )
            })
            .collect(),
    })
}

/// Every value of attribute `name` in `markup`, in order (values hold no
/// `"`: Chromium writes it as `&quot;`).
pub fn attribute_values(markup: &str, name: &str) -> Vec<String> {
    let needle = format!(" {name}=\"");
    let mut out = Vec::new();
    let mut rest = markup;
    while let Some(at) = rest.find(&needle) {
        rest = &rest[at + needle.len()..];
        let end = rest.find('"').unwrap_or(rest.len());
        out.push(unescape(&rest[..end]));
        rest = &rest[end..];
    }
    out
}

/// Undoes HTML's five escapes.
pub fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}
