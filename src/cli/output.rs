//! Human and JSON output of a build (design §4).
//!
//! Human lines go to stderr, cargo style (a right-aligned verb, then the step);
//! a progress bar only on a TTY; `NO_COLOR` honoured. `--message-format json`
//! prints one JSON object per line on stdout instead.

use indicatif::{ProgressBar, ProgressStyle};
use scone::engine::{BuildReport, Event, EventSink, Status};
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

    /// A cargo-style status line on stderr: a right-aligned verb, then text.
    pub fn status(&self, verb: &str, text: &str) {
        if self.verbosity.quiet {
            return;
        }
        self.line(&self.verb(verb, "32"), text);
    }

    pub fn warn(&self, text: &str) {
        let label = if self.color {
            "\x1b[1;33mwarning\x1b[0m"
        } else {
            "warning"
        };
        self.raw(&format!("{label}: {text}"));
    }

    /// Every warning of `texts`, in one write (a big repo can have thousands).
    pub fn warn_all(&self, texts: &[String]) {
        if texts.is_empty() {
            return;
        }
        let label = if self.color {
            "\x1b[1;33mwarning\x1b[0m"
        } else {
            "warning"
        };
        let mut all = String::with_capacity(texts.iter().map(|t| t.len() + 16).sum());
        for (i, t) in texts.iter().enumerate() {
            if i > 0 {
                all.push('\n');
            }
            all.push_str(label);
            all.push_str(": ");
            all.push_str(t);
        }
        self.raw(&all);
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

    fn raw(&self, text: &str) {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }

    fn json(&self, value: serde_json::Value) {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{value}");
        let _ = out.flush();
    }

    /// The closing line / message.
    pub fn finished(&self, report: &BuildReport) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        match self.format {
            MessageFormat::Json => self.json(serde_json::json!({
                "reason": "build-finished",
                "success": report.success(),
                "built": report.built,
                "fresh": report.fresh,
                "remote": report.remote,
                "failed": report.failed.len(),
                "hashed_files": report.hashed_files,
                "fast_path": report.replayed,
                "reused": report.reused.len(),
                "ms": report.ms,
            })),
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
                    text.push_str(&format!(" ({} files hashed", report.hashed_files));
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
            } => {
                if let Some(bar) = &self.bar {
                    bar.inc(1);
                }
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
                        self.json(msg);
                    }
                    MessageFormat::Human => match status {
                        Status::Built => {
                            if let Some(warnings) =
                                outputs.get("warnings").and_then(|w| w.as_array())
                            {
                                let texts: Vec<String> = warnings
                                    .iter()
                                    .filter_map(|w| Some(w.as_str()?.to_string()))
                                    .collect();
                                self.warn_all(&texts);
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
            Event::Warning { message } => match self.format {
                MessageFormat::Json => self.json(serde_json::json!({
                    "reason": "warning",
                    "message": message,
                })),
                MessageFormat::Human => self.warn(&message),
            },
        }
    }
}
