//! A build with nothing to do: the last build's messages replayed from the
//! build state (its warnings; its steps as fresh where they are listed), and
//! its timings saved.

use scone::engine::{self, Event, EventSink, Session, Status};
use std::path::Path;

use super::args::CommonArgs;
use super::build::Outcome;
use super::output::Output;
use super::timings::Clock;

/// Replays the last build: every step it planned, fresh.
/// A build with nothing to do: its messages replayed, its timings saved.
pub(super) fn replayed(
    session: &Session,
    fresh: &scone::engine::state::FreshBuild,
    probe: &Output,
    mut clock: Clock,
    target_dir: &Path,
    common: &CommonArgs,
) -> anyhow::Result<Outcome> {
    clock.phase("replay");
    let report = replay(session, fresh, probe);
    clock.replayed(report.fresh);
    clock.save(true, target_dir, probe, common.message_format);
    Ok(Outcome {
        code: 0,
        workspace: None,
        report: Some(report),
        inputs: Vec::new(),
        spent: None,
    })
}

/// The messages of a build with nothing to do: the last build's warnings and,
/// where they are listed (JSON, `-v`), its steps as fresh (only then is the
/// rest of the state read).
fn replay(
    session: &Session,
    fresh: &scone::engine::state::FreshBuild,
    out: &Output,
) -> engine::BuildReport {
    let started = std::time::Instant::now();
    out.warn_all(&super::output::read_stored_warnings(&fresh.warnings));
    if out.lists_fresh() {
        let state = session.state();
        for &i in state.last.iter().flat_map(|l| &l.steps) {
            let step = &state.steps[i as usize];
            let outputs = if out.wants_outputs() {
                step.record(state)
                    .map_or(serde_json::Value::Null, |r| r.outputs())
            } else {
                serde_json::Value::Null
            };
            out.event(Event::Finished {
                id: step.id.clone(),
                status: Status::Fresh,
                fingerprint: step.fingerprint.clone(),
                outputs,
                why: None,
                ms: 0,
                ran: None,
            });
        }
    }
    let report = engine::BuildReport {
        fresh: fresh.steps,
        all_cacheable: true,
        replayed: true,
        ms: started.elapsed().as_millis() as u64,
        ..engine::BuildReport::default()
    };
    out.finished(&report);
    report
}
