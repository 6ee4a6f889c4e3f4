//! Human and JSON output of a build (design §4).
//!
//! Human lines go to stderr, cargo style (a right-aligned verb, then the step);
//! a progress bar only on a TTY; `NO_COLOR` honoured. `--message-format json`
//! prints one JSON object per line on stdout instead.

use indicatif::{ProgressBar, ProgressStyle};
use scone::engine::{BuildReport, Event, EventSink, Status};
use scone::manifest::snippet::Renderer;
use scone::manifest::{Diagnostic, ErrorKind, Level, Pos};
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use super::args::{CommonArgs, MessageFormat};

/// How chatty to be.
#[derive(Clone, Copy, Debug)]
pub struct Verbosity {
    pub verbose: u8,
    pub quiet: bool,
    pub explain: bool,
}

/// Prints events as they come.
pub struct Output {
    format: MessageFormat,
    verbosity: Verbosity,
    color: bool,
    bar: Option<ProgressBar>,
    lock: Mutex<()>,
}

/// Where the command's closing `build-finished` message stands: a JSON
/// consumer reads exactly one, last (before `timings`), with `success` true
/// only when the command exits 0.
enum Closing {
    /// Nothing ran yet.
    Open,
    /// An engine run ended; the message if the command now fails.
    Ran(serde_json::Value),
    /// Printed.
    Closed,
}

static CLOSING: Mutex<Closing> = Mutex::new(Closing::Open);

fn closing() -> std::sync::MutexGuard<'static, Closing> {
    CLOSING.lock().unwrap_or_else(|e| e.into_inner())
}

/// The `build-finished` message of `report`.
fn finished_json(report: &BuildReport, success: bool) -> serde_json::Value {
    serde_json::json!({
        "reason": "build-finished",
        "success": success,
        "built": report.built,
        "fresh": report.fresh,
        "remote": report.remote,
        "failed": report.failed.len(),
        "hashed_files": report.hashed_files,
        "fast_path": report.replayed,
        // On the fast path every step is carried over unchecked (as the
        // `timings` message counts them).
        "reused": if report.replayed { report.fresh } else { report.reused.len() },
        "ms": report.ms,
    })
}

/// Closes a `build` or `apply` that ends with an error (after its
/// diagnostic): a failed `build-finished` with what its run did (nothing, if
/// it failed before one), unless the closing message is out already.
pub fn close_failed(out: &Output) {
    let message = match std::mem::replace(&mut *closing(), Closing::Closed) {
        Closing::Closed => return,
        Closing::Ran(message) => message,
        Closing::Open => finished_json(&BuildReport::default(), false),
    };
    if out.is_json() {
        out.json(message);
    }
}

impl Output {
    pub fn new(args: &CommonArgs, total_steps: usize) -> Output {
        let tty = std::io::stderr().is_terminal();
        let color = tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        let show_bar = tty && !args.quiet && args.message_format == MessageFormat::Human;
        let bar = show_bar.then(|| {
            let bar = ProgressBar::new(total_steps as u64);
            bar.set_style(
                ProgressStyle::with_template("    Building [{bar:25}] {pos}/{len}: {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar
        });
        Output {
            format: args.message_format,
            verbosity: Verbosity {
                verbose: args.verbose,
                quiet: args.quiet,
                explain: args.explain,
            },
            color,
            bar,
            lock: Mutex::new(()),
        }
    }

    /// An output for messages only: never a progress bar.
    pub fn messages(args: &CommonArgs) -> Output {
        let mut out = Output::new(
            &CommonArgs {
                quiet: true,
                ..args.clone()
            },
            0,
        );
        out.verbosity.quiet = args.quiet;
        out
    }

    /// A cargo-style status line on stderr: a right-aligned verb, then text.
    pub fn status(&self, verb: &str, text: &str) {
        if self.verbosity.quiet {
            return;
        }
        self.line(&self.verb(verb, "32"), text);
    }

    /// A warning of the run (not of a manifest): human `warning: text`, or a
    /// JSON diagnostic.
    pub fn warn(&self, text: &str) {
        self.diagnostics(&[Diagnostic::warning(
            ErrorKind::Build,
            "",
            Pos::default(),
            text,
        )]);
    }

    /// A hint that is no warning (what to do next): `note: text`; no JSON.
    pub fn note(&self, text: &str) {
        if self.verbosity.quiet || self.format == MessageFormat::Json {
            return;
        }
        let label = if self.color {
            "\x1b[1;36mnote\x1b[0m"
        } else {
            "note"
        };
        self.raw(&format!("{label}: {text}"));
    }

    /// Every diagnostic of `diags`: on stdout one JSON object each (errors
    /// also as text on stderr), or on stderr as text with the source line, in
    /// one write (a big repo can have thousands). In text, warnings of one kind (same code, same message but
    /// for the names in backquotes) collapse into the first with a count,
    /// unless `-v`; `-q` drops warnings.
    pub fn diagnostics(&self, diags: &[Diagnostic]) {
        if diags.is_empty() {
            return;
        }
        if self.format == MessageFormat::Json {
            {
                let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
                let mut out = std::io::stdout().lock();
                for d in diags {
                    let _ = writeln!(out, "{}", d.to_json());
                }
                let _ = out.flush();
            }
            // As cargo does, why the run fails also shows on stderr.
            let mut renderer = Renderer::new(self.color);
            let errors: Vec<String> = diags
                .iter()
                .filter(|d| d.level == Level::Error)
                .map(|d| renderer.render(d))
                .collect();
            if !errors.is_empty() {
                self.raw(&errors.join("\n"));
            }
            return;
        }
        let shown: Vec<(&Diagnostic, usize)> = if self.verbosity.verbose > 0 {
            diags.iter().map(|d| (d, 1)).collect()
        } else {
            collapse(diags)
        };
        let mut renderer = Renderer::new(self.color);
        let mut all = String::new();
        for (d, count) in shown {
            if d.level == Level::Warning && self.verbosity.quiet {
                continue;
            }
            if !all.is_empty() {
                all.push('\n');
            }
            if count > 1 {
                let mut first = d.clone();
                first.message = format!(
                    "{} (and {} more like it; -v lists them)",
                    d.message,
                    count - 1
                );
                all.push_str(&renderer.render(&first));
            } else {
                all.push_str(&renderer.render(d));
            }
        }
        if !all.is_empty() {
            self.raw(&all);
        }
    }

    /// Every warning of `diags` (see [`Output::diagnostics`]).
    pub fn warn_all(&self, diags: &[Diagnostic]) {
        self.diagnostics(diags);
    }

    pub fn error(&self, text: &str) {
        let label = if self.color {
            "\x1b[1;31merror\x1b[0m"
        } else {
            "error"
        };
        self.raw(&format!("{label}: {text}"));
    }

    fn verb(&self, verb: &str, color: &str) -> String {
        if self.color {
            format!("\x1b[1;{color}m{verb:>12}\x1b[0m")
        } else {
            format!("{verb:>12}")
        }
    }

    fn line(&self, verb: &str, text: &str) {
        self.raw(&format!("{verb} {text}"));
    }

    /// A line on stderr. One nobody reads any more (`scone build 2>&1 |
    /// head`: a closed pipe) is dropped: the build goes on, as cargo's does.
    fn raw(&self, text: &str) {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let print = || {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        };
        match &self.bar {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }

    /// Whether messages are JSON (`--message-format json`).
    pub fn is_json(&self) -> bool {
        self.format == MessageFormat::Json
    }

    /// One JSON message on stdout (`--message-format json`).
    pub fn json_message(&self, value: serde_json::Value) {
        self.json(value);
    }

    fn json(&self, value: serde_json::Value) {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{value}");
        let _ = out.flush();
    }

    /// An engine run ended: its counts close the command if it fails before
    /// [`Output::finished`] ([`close_failed`]).
    pub fn ran(&self, report: &BuildReport) {
        *closing() = Closing::Ran(finished_json(report, false));
    }

    /// The closing line / message, once everything the command writes is
    /// written: `success` is then the exit code's.
    pub fn finished(&self, report: &BuildReport) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        *closing() = Closing::Closed;
        match self.format {
            MessageFormat::Json => self.json(finished_json(report, report.success())),
            MessageFormat::Human => {
                let mut text = if report.remote_configured {
                    format!(
                        "in {:.2}s: {} built, {} remote hits, {} local hits",
                        report.ms as f64 / 1000.0,
                        report.built,
                        report.remote,
                        report.fresh
                    )
                } else {
                    format!(
                        "in {:.2}s: {} built, {} fresh",
                        report.ms as f64 / 1000.0,
                        report.built,
                        report.fresh
                    )
                };
                if !report.failed.is_empty() {
                    text.push_str(&format!(", {} failed", report.failed.len()));
                }
                if self.verbosity.verbose > 0 {
                    text.push_str(&format!(
                        " ({} file{} hashed",
                        report.hashed_files,
                        if report.hashed_files == 1 { "" } else { "s" }
                    ));
                    if !report.reused.is_empty() {
                        text.push_str(&format!(
                            ", {} reused unchecked: nothing they read changed",
                            report.reused.len()
                        ));
                    }
                    text.push(')');
                }
                if report.success() {
                    self.status("Finished", &text);
                } else {
                    self.error(&format!("build failed {text}"));
                }
            }
        }
    }
}

impl Output {
    /// Whether a replayed build lists its steps: JSON lists every step, `-v`
    /// prints fresh ones (a progress bar is cleared at once: it needs none).
    pub fn lists_fresh(&self) -> bool {
        self.format == MessageFormat::Json || self.verbosity.verbose > 0
    }
}

impl EventSink for Output {
    fn wants_reused(&self) -> bool {
        // JSON lists every step, `-v` prints fresh ones, the bar counts them.
        self.format == MessageFormat::Json || self.verbosity.verbose > 0 || self.bar.is_some()
    }

    fn wants_outputs(&self) -> bool {
        self.format == MessageFormat::Json
    }

    fn wants_why(&self) -> bool {
        self.format == MessageFormat::Json || self.verbosity.explain
    }

    fn event(&self, event: Event) {
        match event {
            Event::Started { id } => {
                if let Some(bar) = &self.bar {
                    bar.set_message(id.to_string());
                }
            }
            Event::Finished {
                id,
                status,
                fingerprint,
                outputs,
                why,
                ms,
                ..
            } => {
                if let Some(bar) = &self.bar {
                    bar.inc(1);
                }
                // What the step warns of is a diagnostic in either format.
                let warnings: Vec<Diagnostic> = match status {
                    Status::Built => outputs
                        .get("warnings")
                        .and_then(|w| w.as_array())
                        .into_iter()
                        .flatten()
                        .filter_map(|w| {
                            Some(Diagnostic::warning(
                                ErrorKind::Build,
                                "",
                                Pos::default(),
                                format!("{id}: {}", w.as_str()?),
                            ))
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                match self.format {
                    MessageFormat::Json => {
                        let mut msg = serde_json::json!({
                            "reason": "step",
                            "step": id.kind,
                            "unit": id.unit,
                            "status": status.as_str(),
                            "fingerprint": fingerprint,
                            "outputs": if outputs.is_null() { serde_json::json!({}) } else { outputs },
                            "ms": ms,
                        });
                        match status {
                            Status::Built => msg["why"] = serde_json::json!(why),
                            Status::Failed => msg["error"] = serde_json::json!(why),
                            Status::Fresh | Status::Remote => {}
                        }
                        let failed = (status == Status::Failed).then(|| {
                            Diagnostic::new(
                                ErrorKind::Build,
                                "",
                                Pos::default(),
                                format!("{id}: {}", why.as_deref().unwrap_or_default()),
                            )
                        });
                        self.json(msg);
                        self.diagnostics(&warnings);
                        if let Some(error) = failed {
                            self.diagnostics(&[error]);
                        }
                    }
                    MessageFormat::Human => match status {
                        Status::Built => {
                            self.diagnostics(&warnings);
                            if let Some(note) = outputs.get("note").and_then(|n| n.as_str()) {
                                self.note(&format!("{id}: {note}"));
                            }
                            if let Some(install) = outputs.get("install").and_then(|i| i.as_str()) {
                                self.note(&format!("install the chart with: {install}"));
                            }
                            let mut text = format!("{id} ({ms} ms)");
                            if self.verbosity.explain {
                                if let Some(why) = why {
                                    text.push_str(&format!(": {why}"));
                                }
                            }
                            self.status("Built", &text);
                        }
                        Status::Remote => {
                            self.status("Downloaded", &format!("{id} (remote hit, {ms} ms)"))
                        }
                        Status::Fresh if self.verbosity.verbose > 0 => {
                            self.status("Fresh", &format!("{id} (local hit)"))
                        }
                        Status::Fresh => {}
                        Status::Failed => self.error(&format!("{id}: {}", why.unwrap_or_default())),
                    },
                }
            }
            Event::Warning { message } => self.warn(&message),
        }
    }
}

/// `warnings` as the build state keeps them (one JSON text each), to print
/// again when a build is replayed.
pub fn stored_warnings(warnings: &[Diagnostic]) -> Vec<String> {
    warnings.iter().map(|w| w.to_json().to_string()).collect()
}

/// The warnings of [`stored_warnings`] (a text that is none, from an older
/// state, is a warning of its own).
pub fn read_stored_warnings(texts: &[String]) -> Vec<Diagnostic> {
    texts
        .iter()
        .map(|t| {
            serde_json::from_str(t)
                .ok()
                .and_then(|v| Diagnostic::from_json(&v))
                .unwrap_or_else(|| Diagnostic::warning(ErrorKind::Build, "", Pos::default(), t))
        })
        .collect()
}

/// Up to this many warnings of one kind are all shown; more collapse.
const COLLAPSE_AFTER: usize = 3;

/// `diags` with each warning kind that has more than [`COLLAPSE_AFTER`]
/// warnings once, with how many there are (in the order each kind first
/// appears); errors are never collapsed.
fn collapse(diags: &[Diagnostic]) -> Vec<(&Diagnostic, usize)> {
    let mut groups: std::collections::HashMap<(ErrorKind, String), Vec<usize>> =
        std::collections::HashMap::new();
    for (i, d) in diags.iter().enumerate() {
        if d.level == Level::Warning {
            groups
                .entry((d.kind, shape(&d.message)))
                .or_default()
                .push(i);
        }
    }
    let mut out = Vec::new();
    for (i, d) in diags.iter().enumerate() {
        let group = match d.level {
            Level::Error => None,
            Level::Warning => groups.get(&(d.kind, shape(&d.message))),
        };
        match group {
            Some(members) if members.len() > COLLAPSE_AFTER => {
                if members[0] == i {
                    out.push((d, members.len()));
                }
            }
            _ => out.push((d, 1)),
        }
    }
    out
}

/// A message with every `quoted` name replaced, but for the field after its
/// last `.` (`secrets[api].issuer` → `….issuer`): what warnings of one kind
/// share.
fn shape(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for (i, part) in message.split('`').enumerate() {
        if i % 2 == 0 {
            out.push_str(part);
        } else {
            out.push_str("`…");
            if let Some((_, field)) = part.rsplit_once('.') {
                out.push('.');
                out.push_str(field);
            }
            out.push('`');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warning(message: &str) -> Diagnostic {
        Diagnostic::warning(ErrorKind::Build, "", Pos::default(), message)
    }

    #[test]
    fn more_than_three_warnings_of_one_shape_collapse() {
        let renamed =
            |n: usize| warning(&format!("service `a_{n}`: its Kubernetes name is `a-{n}`"));
        let diags = [
            renamed(1),
            warning("port `x` is named `y`"),
            warning("`secrets[a].issuer` is not implemented"),
            renamed(2),
            warning("`secrets[b].dns` is not implemented"),
            warning("`secrets[c].issuer` is not implemented"),
            warning("`secrets[d].common_name` is not implemented"),
            renamed(3),
            renamed(4),
            warning("port `z` is named `w`"),
        ];
        let shown: Vec<(String, usize)> = collapse(&diags)
            .into_iter()
            .map(|(d, n)| (d.message.clone(), n))
            .collect();
        assert_eq!(
            shown,
            [
                ("service `a_1`: its Kubernetes name is `a-1`".to_string(), 4),
                ("port `x` is named `y`".to_string(), 1),
                ("`secrets[a].issuer` is not implemented".to_string(), 1),
                ("`secrets[b].dns` is not implemented".to_string(), 1),
                ("`secrets[c].issuer` is not implemented".to_string(), 1),
                ("`secrets[d].common_name` is not implemented".to_string(), 1),
                ("port `z` is named `w`".to_string(), 1),
            ]
        );
    }
}
