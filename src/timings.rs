//! The timings of one build (`scone build --timings`): when each step that
//! ran started, how long it took, on which worker, and why it was built;
//! the phases around the steps (load, plan, record); and what follows from
//! them — the critical path, how busy the workers were, the time per step
//! kind. [`html::page`] draws them as one self-contained page; [`Timings::to_json`]
//! is the `timings` JSON message.
//!
//! Steps reused from the last build unchecked did not run: they are only
//! counted ([`Timings::reused`]).

mod gantt;
pub mod html;

use serde::Serialize;

use crate::draw::kinds;

/// Milliseconds `ms` to the microsecond (what the clock can tell, and no
/// float noise in the JSON).
pub fn micros(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// A span of the build outside the steps.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Phase {
    /// `load`, `plan`, `run`, `record`, `replay`, `docker load`.
    pub name: String,
    /// Milliseconds since the build started.
    pub start_ms: f64,
    pub end_ms: f64,
}

/// One step that ran (was checked, built or downloaded).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct StepTime {
    /// Its kind (`layer`, …).
    pub step: String,
    /// Its unit (service, mesh namespace or base).
    pub unit: String,
    /// `built`, `fresh` (a local hit), `remote` (a remote hit) or `failed`.
    pub status: String,
    /// Milliseconds since the build started.
    pub start_ms: f64,
    /// How long it took: the `ms` of its `step` message.
    pub ms: u64,
    /// The pool worker it ran on.
    pub worker: Option<usize>,
    /// Why it was built (`--explain`), or why it failed.
    pub why: Option<String>,
    /// Indices (in [`Timings::steps`]) of the steps it waited for that ran.
    pub deps: Vec<usize>,
}

impl StepTime {
    /// `kind:unit`.
    pub fn id(&self) -> String {
        format!("{}:{}", self.step, self.unit)
    }

    pub fn end_ms(&self) -> f64 {
        self.start_ms + self.ms as f64
    }
}

/// The timings of a build.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Timings {
    /// `build` or `apply`.
    pub command: String,
    /// When it started (UTC, RFC 3339).
    pub started: String,
    /// Steps run at once (`-j`), as asked.
    pub jobs: usize,
    /// The step workers the build had: `jobs`, but never more than its
    /// steps, nor than [`crate::engine::MOST_JOBS`] (0: no step ran).
    pub workers: usize,
    /// From start to the end of the last phase.
    pub total_ms: f64,
    pub success: bool,
    /// Whether the build state answered alone (nothing was planned or run).
    pub fast_path: bool,
    pub phases: Vec<Phase>,
    /// In the order they finished.
    pub steps: Vec<StepTime>,
    /// Steps reused from the last build unchecked (not in `steps`).
    pub reused: usize,
    /// Files whose content was hashed, and their bytes.
    pub hashed_files: u64,
    pub hashed_bytes: u64,
    /// Bytes of the files the built steps stored (each blob once).
    pub written_bytes: u64,
}

/// The chain of steps, each waiting for the one before, whose durations add
/// up to the most: no number of workers makes the build shorter than it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CriticalPath {
    /// Indices in [`Timings::steps`], first to last.
    pub steps: Vec<usize>,
    /// The sum of their durations.
    pub ms: u64,
}

/// The steps of one kind.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct KindTotal {
    pub kind: String,
    pub steps: usize,
    pub built: usize,
    pub fresh: usize,
    pub remote: usize,
    pub failed: usize,
    /// The sum of their durations.
    pub ms: u64,
    pub max_ms: u64,
}

impl Timings {
    /// See [`CriticalPath`]. Ties go to the step that started first.
    pub fn critical_path(&self) -> CriticalPath {
        let n = self.steps.len();
        // A step's deps started (and ended) before it did.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| {
            self.steps[a]
                .start_ms
                .total_cmp(&self.steps[b].start_ms)
                .then(a.cmp(&b))
        });
        let mut best: Vec<Option<u64>> = vec![None; n];
        let mut via: Vec<Option<usize>> = vec![None; n];
        for &i in &order {
            let mut longest = 0;
            for &d in &self.steps[i].deps {
                if let Some(Some(b)) = best.get(d) {
                    if via[i].is_none() || *b > longest {
                        longest = *b;
                        via[i] = Some(d);
                    }
                }
            }
            best[i] = Some(longest + self.steps[i].ms);
        }
        let Some(&last) = order
            .iter()
            .max_by(|&&a, &&b| best[a].cmp(&best[b]).then(b.cmp(&a)))
        else {
            return CriticalPath::default();
        };
        let mut steps = vec![last];
        while let Some(d) = via[*steps.last().unwrap_or(&last)] {
            steps.push(d);
        }
        steps.reverse();
        CriticalPath {
            ms: best[last].unwrap_or(0),
            steps,
        }
    }

    /// How many workers were busy: `(time, busy)` from each time on, at
    /// every change. A worker waiting inside a step (for its parallel
    /// hashing, say) may run another step meanwhile: it counts once.
    pub fn busy(&self) -> Vec<(f64, usize)> {
        let mut changes: Vec<(f64, i64)> = Vec::with_capacity(2 * self.steps.len());
        for (start, end) in self.worker_spans() {
            changes.push((start, 1));
            changes.push((end, -1));
        }
        // At one instant, ends before starts.
        changes.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut out: Vec<(f64, usize)> = Vec::new();
        let mut busy = 0i64;
        for (t, d) in changes {
            busy += d;
            let now = busy.max(0) as usize;
            match out.last_mut() {
                Some(last) if last.0 == t => last.1 = now,
                _ => out.push((micros(t), now)),
            }
        }
        out.dedup_by(|b, a| a.1 == b.1);
        out
    }

    /// The spans each worker was busy: per worker, the union of its steps'
    /// spans (a step on no known worker is a span of its own).
    fn worker_spans(&self) -> Vec<(f64, f64)> {
        let mut by_worker: std::collections::BTreeMap<Option<usize>, Vec<(f64, f64)>> =
            std::collections::BTreeMap::new();
        let mut out = Vec::new();
        for s in &self.steps {
            match s.worker {
                Some(_) => by_worker
                    .entry(s.worker)
                    .or_default()
                    .push((s.start_ms, s.end_ms())),
                None => out.push((s.start_ms, s.end_ms())),
            }
        }
        for mut spans in by_worker.into_values() {
            spans.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut current: Option<(f64, f64)> = None;
            for (start, end) in spans {
                current = match current {
                    Some((s, e)) if start <= e => Some((s, e.max(end))),
                    Some(done) => {
                        out.push(done);
                        Some((start, end))
                    }
                    None => Some((start, end)),
                };
            }
            out.extend(current);
        }
        out
    }

    /// The workers the build had ([`Timings::workers`]), or `-j` when that
    /// is not known.
    pub fn pool(&self) -> usize {
        if self.workers == 0 {
            self.jobs
        } else {
            self.workers
        }
    }

    /// Why the build had fewer workers than `-j` asked for, if it had.
    pub fn fewer_workers(&self) -> Option<&'static str> {
        (self.workers > 0 && self.workers < self.jobs).then_some(
            if self.workers == crate::engine::MOST_JOBS {
                "the most a build starts"
            } else {
                "one per step"
            },
        )
    }

    /// The mean share of the workers busy from the first step's start to
    /// the last one's end (0 to 1): of the workers the build had, not of a
    /// `-j` above its steps.
    pub fn utilisation(&self) -> f64 {
        let Some((first, last)) = self.run_span() else {
            return 0.0;
        };
        let busy: f64 = self.worker_spans().iter().map(|(s, e)| e - s).sum();
        let span = (last - first) * self.pool().max(1) as f64;
        if span <= 0.0 {
            0.0
        } else {
            (busy / span).min(1.0)
        }
    }

    /// From the first step's start to the last one's end.
    pub fn run_span(&self) -> Option<(f64, f64)> {
        let first = self.steps.iter().map(|s| s.start_ms).reduce(f64::min)?;
        let last = self.steps.iter().map(StepTime::end_ms).reduce(f64::max)?;
        Some((first, last))
    }

    /// Before the first step (loading, planning): the whole build if none ran.
    pub fn before_first_step_ms(&self) -> f64 {
        self.run_span().map_or(self.total_ms, |(first, _)| first)
    }

    /// After the last step (recording the lock and the build state).
    pub fn after_last_step_ms(&self) -> f64 {
        self.run_span()
            .map_or(0.0, |(_, last)| (self.total_ms - last).max(0.0))
    }

    /// Per kind, in build order.
    pub fn kinds(&self) -> Vec<KindTotal> {
        let mut out: Vec<KindTotal> = Vec::new();
        for s in &self.steps {
            let at = match out.iter().position(|k| k.kind == s.step) {
                Some(at) => at,
                None => {
                    out.push(KindTotal {
                        kind: s.step.clone(),
                        ..KindTotal::default()
                    });
                    out.len() - 1
                }
            };
            let k = &mut out[at];
            k.steps += 1;
            k.ms += s.ms;
            k.max_ms = k.max_ms.max(s.ms);
            match s.status.as_str() {
                "built" => k.built += 1,
                "remote" => k.remote += 1,
                "failed" => k.failed += 1,
                _ => k.fresh += 1,
            }
        }
        out.sort_by(|a, b| {
            kinds::order(&a.kind)
                .cmp(&kinds::order(&b.kind))
                .then(a.kind.cmp(&b.kind))
        });
        out
    }

    /// How many steps ran with `status`.
    pub fn count(&self, status: &str) -> usize {
        self.steps.iter().filter(|s| s.status == status).count()
    }

    /// The `limit` slowest steps, slowest first.
    pub fn slowest(&self, limit: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.steps.len()).collect();
        order.sort_by(|&a, &b| self.steps[b].ms.cmp(&self.steps[a].ms).then(a.cmp(&b)));
        order.truncate(limit);
        order
    }

    /// The `timings` JSON message: every field, and what follows from them.
    pub fn to_json(&self) -> serde_json::Value {
        let critical = self.critical_path();
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            map.insert("reason".into(), "timings".into());
            map.insert(
                "critical_path".into(),
                serde_json::json!({
                    "steps": critical.steps.iter().map(|&i| self.steps[i].id()).collect::<Vec<_>>(),
                    "ms": critical.ms,
                }),
            );
            map.insert(
                "kinds".into(),
                serde_json::to_value(self.kinds()).unwrap_or_default(),
            );
            map.insert(
                "busy".into(),
                serde_json::to_value(self.busy()).unwrap_or_default(),
            );
            map.insert(
                "utilisation".into(),
                ((self.utilisation() * 1e4).round() / 1e4).into(),
            );
            map.insert(
                "before_first_step_ms".into(),
                micros(self.before_first_step_ms()).into(),
            );
            map.insert(
                "after_last_step_ms".into(),
                micros(self.after_last_step_ms()).into(),
            );
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(kind: &str, unit: &str, start: f64, ms: u64, deps: &[usize]) -> StepTime {
        StepTime {
            step: kind.into(),
            unit: unit.into(),
            status: "built".into(),
            start_ms: start,
            ms,
            worker: Some(usize::from(unit == "b")),
            why: None,
            deps: deps.to_vec(),
        }
    }

    /// Two services' chains on two workers, then a policy over both.
    fn build() -> Timings {
        Timings {
            jobs: 2,
            total_ms: 100.0,
            steps: vec![
                step("copy", "a", 10.0, 5, &[]),
                step("copy", "b", 10.0, 20, &[]),
                step("layer", "a", 15.0, 10, &[0]),
                step("layer", "b", 30.0, 30, &[1]),
                step("policy", "m", 60.0, 10, &[2, 3]),
            ],
            ..Timings::default()
        }
    }

    #[test]
    fn the_critical_path_is_the_longest_chain() {
        let path = build().critical_path();
        assert_eq!(path.steps, [1, 3, 4]);
        assert_eq!(path.ms, 20 + 30 + 10);
        assert_eq!(Timings::default().critical_path(), CriticalPath::default());
    }

    #[test]
    fn busy_workers_over_time() {
        let t = build();
        // Worker 0: copy a, layer a, then the policy; worker 1: copy b, layer b.
        assert_eq!(t.busy(), [(10.0, 2), (25.0, 1), (70.0, 0)]);
        // 75 ms of steps in 60 ms on 2 workers.
        assert!((t.utilisation() - 75.0 / 120.0).abs() < 1e-9);
        assert_eq!(t.before_first_step_ms(), 10.0);
        assert_eq!(t.after_last_step_ms(), 30.0);
    }

    #[test]
    fn a_step_run_inside_another_on_its_worker_counts_once() {
        let mut t = build();
        for s in &mut t.steps {
            s.worker = Some(0);
        }
        // All on one worker, busy without a break from 10 to 70.
        assert_eq!(t.busy(), [(10.0, 1), (70.0, 0)]);
        assert!((t.utilisation() - 60.0 / 120.0).abs() < 1e-9);
    }

    #[test]
    fn time_per_kind_adds_up() {
        let kinds = build().kinds();
        let names: Vec<&str> = kinds.iter().map(|k| k.kind.as_str()).collect();
        assert_eq!(names, ["copy", "layer", "policy"]);
        assert_eq!(kinds[1].ms, 40);
        assert_eq!(kinds[1].max_ms, 30);
        assert_eq!(build().slowest(2), [3, 1]);
        let json = build().to_json();
        assert_eq!(json["reason"], "timings");
        assert_eq!(json["critical_path"]["ms"], 60);
        assert_eq!(json["steps"].as_array().map(Vec::len), Some(5));
    }
}
