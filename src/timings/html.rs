//! The timings page: one self-contained HTML file — inline CSS (allowed by
//! its hash in the page's Content-Security-Policy, which allows nothing
//! else: no script, no font, no image, no request), the timeline drawn as
//! inline SVG ([`super::gantt`]), then the summary and the tables.

use std::fmt::Write as _;

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use super::{StepTime, Timings};
use crate::draw::kinds;
use crate::draw::svg::{bytes, duration, escape, num};

const STYLE: &str = "\
body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#222;background:#fff}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}\
.meta{color:#555;margin:0 0 16px}\
table{border-collapse:collapse}td,th{padding:3px 10px;text-align:left;border-bottom:1px solid #e4e4e4;vertical-align:top}\
th{background:#f5f5f5}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}\
#summary td:first-child{color:#555}\
.why{color:#555;max-width:560px;overflow-wrap:anywhere}\
.plot{overflow-x:auto;border:1px solid #e4e4e4}\
svg text{font:11px 'DejaVu Sans Mono',Menlo,Consolas,monospace;fill:#333}\
.grid{stroke:#ececec}.tick{fill:#777}\
.bar{stroke:none}.fresh{fill-opacity:.35}.failed{stroke:#d00;stroke-width:2}\
.critical{stroke:#111;stroke-width:1.6}\
.busy{fill:#4a90d9;fill-opacity:.45;stroke:#2c6db0;stroke-width:1}\
.jobs{stroke:#d55e00;stroke-dasharray:4 3}\
.legend{margin:6px 0}details{margin-top:8px}summary{cursor:pointer}";

/// The page of `t`.
pub fn page(t: &Timings) -> String {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
    let mut out = String::with_capacity(8192 + 400 * t.steps.len());
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'sha256-{hash}'\">\n\
         <meta name=\"viewport\" content=\"width=device-width\">\n\
         <title>scone {cmd} timings</title>\n<style>{STYLE}</style></head>\n<body>\n\
         <h1>scone {cmd}: timings</h1>\n<p class=\"meta\">started {started} · -j {jobs} · {total} · {verdict}</p>\n",
        cmd = escape(&t.command),
        started = escape(&t.started),
        jobs = t.jobs,
        total = duration(t.total_ms),
        verdict = if t.success { "success" } else { "failed" },
    );
    summary(&mut out, t);
    super::gantt::timeline(&mut out, t);
    critical(&mut out, t);
    slowest(&mut out, t);
    per_kind(&mut out, t);
    all_steps(&mut out, t);
    out.push_str("</body></html>\n");
    out
}

/// How a step's status is said on the page.
pub(super) fn status_word(status: &str) -> &str {
    match status {
        "fresh" => "local hit",
        "remote" => "remote hit",
        other => other,
    }
}

fn percent(part: f64, whole: f64) -> String {
    if whole <= 0.0 {
        "–".into()
    } else {
        format!("{:.0}%", 100.0 * part / whole)
    }
}

fn summary(out: &mut String, t: &Timings) {
    let ran = t.steps.len();
    let (built, fresh, remote, failed) = (
        t.count("built"),
        t.count("fresh"),
        t.count("remote"),
        t.count("failed"),
    );
    let critical = t.critical_path();
    let span = t.run_span().map_or(0.0, |(a, b)| b - a);
    out.push_str("<section id=\"summary\"><h2>Summary</h2><table>\n");
    let mut row = |label: &str, attrs: String, value: String| {
        let _ = writeln!(out, "<tr><td>{label}</td><td{attrs}>{value}</td></tr>");
    };
    row(
        "Total",
        format!(" id=\"total\" data-ms=\"{}\"", num(t.total_ms)),
        duration(t.total_ms),
    );
    if t.fast_path {
        row(
            "Fast path",
            " id=\"fast-path\"".into(),
            "nothing changed: the build state answered, no step was planned or run".into(),
        );
    }
    row(
        "Before the first step",
        String::new(),
        format!("{} (load, plan)", duration(t.before_first_step_ms())),
    );
    row(
        "Steps",
        String::new(),
        format!("{} from the first start to the last end", duration(span)),
    );
    row(
        "After the last step",
        String::new(),
        format!(
            "{} (record: scone.lock, build state)",
            duration(t.after_last_step_ms())
        ),
    );
    row(
        "Steps that ran",
        format!(" id=\"ran\" data-count=\"{ran}\""),
        format!("{ran}: {built} built, {fresh} local hits, {remote} remote hits, {failed} failed"),
    );
    row(
        "Reused unchecked",
        format!(" id=\"reused\" data-count=\"{}\"", t.reused),
        format!(
            "{} (nothing they read changed: not run, not drawn)",
            t.reused
        ),
    );
    let hits = (fresh + remote + t.reused) as f64;
    row(
        "Hit rate",
        String::new(),
        format!(
            "{} of {} steps were not built ({} local, {} remote, {} reused)",
            percent(hits, (ran + t.reused) as f64),
            ran + t.reused,
            percent(fresh as f64, (ran + t.reused) as f64),
            percent(remote as f64, (ran + t.reused) as f64),
            percent(t.reused as f64, (ran + t.reused) as f64),
        ),
    );
    row(
        "Critical path",
        format!(" data-ms=\"{}\"", critical.ms),
        format!(
            "{} over {} steps",
            duration(critical.ms as f64),
            critical.steps.len()
        ),
    );
    row(
        "Workers",
        String::new(),
        match t.fewer_workers() {
            Some(why) => format!(
                "-j {} ({} workers: {why}), {} busy on average while steps ran",
                t.jobs,
                t.workers,
                percent(t.utilisation(), 1.0)
            ),
            None => format!(
                "-j {}, {} busy on average while steps ran",
                t.jobs,
                percent(t.utilisation(), 1.0)
            ),
        },
    );
    row(
        "Hashed",
        String::new(),
        format!(
            "{} file{}, {}",
            t.hashed_files,
            if t.hashed_files == 1 { "" } else { "s" },
            bytes(t.hashed_bytes)
        ),
    );
    row(
        "Written",
        String::new(),
        format!(
            "{} in the files the built steps made",
            bytes(t.written_bytes)
        ),
    );
    out.push_str("</table></section>\n");
}

fn step_row(out: &mut String, s: &StepTime, attrs: &str) {
    let _ = writeln!(
        out,
        "<tr{attrs}><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"why\">{}</td></tr>",
        escape(&s.id()),
        status_word(&s.status),
        duration(s.start_ms),
        s.ms,
        s.worker.map_or(String::new(), |w| w.to_string()),
        escape(s.why.as_deref().unwrap_or(""))
    );
}

const STEP_HEAD: &str = "<tr><th>step</th><th>status</th><th class=\"n\">start</th><th class=\"n\">ms</th><th class=\"n\">worker</th><th>why it was built</th></tr>\n";

fn critical(out: &mut String, t: &Timings) {
    let path = t.critical_path();
    let _ = write!(
        out,
        "<section id=\"critical-path\" data-ms=\"{}\"><h2>Critical path: {}</h2>\n\
         <p>The chain of steps, each waiting for the one before, whose durations add up to the most: \
         no number of workers makes the steps take less than this.</p><table>{STEP_HEAD}",
        path.ms,
        duration(path.ms as f64)
    );
    for &i in &path.steps {
        step_row(
            out,
            &t.steps[i],
            &format!(" data-critical-step=\"{}\"", escape(&t.steps[i].id())),
        );
    }
    out.push_str("</table></section>\n");
}

fn slowest(out: &mut String, t: &Timings) {
    let _ = write!(
        out,
        "<section id=\"slowest\"><h2>Slowest steps</h2><table>{STEP_HEAD}"
    );
    for i in t.slowest(15) {
        step_row(out, &t.steps[i], "");
    }
    out.push_str("</table></section>\n");
}

fn per_kind(out: &mut String, t: &Timings) {
    let all: u64 = t.steps.iter().map(|s| s.ms).sum();
    out.push_str(
        "<section id=\"kinds\"><h2>Time per step kind</h2><table>\
         <tr><th>kind</th><th class=\"n\">steps</th><th class=\"n\">built</th><th class=\"n\">local hits</th>\
         <th class=\"n\">remote hits</th><th class=\"n\">failed</th><th class=\"n\">total</th><th class=\"n\">mean</th>\
         <th class=\"n\">slowest</th><th class=\"n\">share</th></tr>\n",
    );
    for k in t.kinds() {
        let _ = writeln!(
            out,
            "<tr data-kind=\"{kind}\" data-ms=\"{ms}\" data-steps=\"{steps}\"><td><svg width=\"12\" height=\"10\"><rect width=\"12\" height=\"10\" fill=\"{c}\"/></svg> {kind}</td>\
             <td class=\"n\">{steps}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{} ms</td><td class=\"n\">{}</td></tr>",
            k.built,
            k.fresh,
            k.remote,
            k.failed,
            duration(k.ms as f64),
            duration(k.ms as f64 / k.steps.max(1) as f64),
            k.max_ms,
            percent(k.ms as f64, all as f64),
            kind = escape(&k.kind),
            ms = k.ms,
            steps = k.steps,
            c = kinds::colour(&k.kind),
        );
    }
    out.push_str("</table></section>\n");
}

fn all_steps(out: &mut String, t: &Timings) {
    let _ = write!(
        out,
        "<details id=\"all-steps\"><summary>All {} steps that ran, by start</summary><table>{STEP_HEAD}",
        t.steps.len()
    );
    let mut order: Vec<usize> = (0..t.steps.len()).collect();
    order.sort_by(|&a, &b| {
        t.steps[a]
            .start_ms
            .total_cmp(&t.steps[b].start_ms)
            .then(a.cmp(&b))
    });
    for i in order {
        step_row(out, &t.steps[i], "");
    }
    out.push_str("</table></details>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timings::Phase;

    fn timings() -> Timings {
        let step = |kind: &str, unit: &str, status: &str, start: f64, ms: u64, deps: Vec<usize>| {
            StepTime {
                step: kind.into(),
                unit: unit.into(),
                status: status.into(),
                start_ms: start,
                ms,
                worker: Some(1),
                why: Some("file:<a>.py changed".into()),
                deps,
            }
        };
        Timings {
            command: "build".into(),
            started: "2026-01-01T00:00:00Z".into(),
            jobs: 2,
            total_ms: 200.0,
            success: true,
            phases: vec![Phase {
                name: "load".into(),
                start_ms: 0.0,
                end_ms: 20.0,
            }],
            steps: vec![
                step("copy", "a", "built", 20.0, 10, vec![]),
                step("layer", "a", "remote", 30.0, 50, vec![0]),
                step("copy", "b", "fresh", 20.0, 2, vec![]),
            ],
            reused: 4,
            ..Timings::default()
        }
    }

    #[test]
    fn one_bar_per_step_and_nothing_to_fetch() {
        let page = page(&timings());
        assert_eq!(page.matches("<rect class=\"bar ").count(), 3);
        assert!(page.contains("data-step=\"layer:a\""));
        assert!(page.contains("class=\"bar remote critical\""));
        assert!(page.contains("fill=\"url(#remote-layer)\""));
        assert!(page.contains("file:&lt;a&gt;.py changed"));
        assert!(page.contains("<td id=\"reused\" data-count=\"4\">"));
        assert!(page.contains("<section id=\"critical-path\" data-ms=\"60\">"));
        assert!(page.contains("default-src 'none'"));
        assert!(!page.contains("src=\""));
        assert!(!page.contains("<script"));
        assert!(!page.contains("http:") && !page.contains("https:"));
    }

    #[test]
    fn the_style_is_allowed_by_its_hash() {
        let page = page(&timings());
        let style = &page[page.find("<style>").unwrap() + 7..page.find("</style>").unwrap()];
        let hash =
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(style.as_bytes()));
        assert!(page.contains(&format!("style-src 'sha256-{hash}'")));
    }
}
