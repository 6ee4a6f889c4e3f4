//! The timeline of the timings page, as inline SVG: the phases, how many
//! workers were busy, and a Gantt chart with a bar per step that ran, each
//! with its tooltip (an SVG `<title>`). One row per unit (a service's chain
//! on one row), so a build of a thousand services has a thousand rows, not
//! four thousand; past 400 rows they are thinner and unlabelled (the tables
//! and tooltips name them).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::html::status_word;
use super::{StepTime, Timings};
use crate::draw::kinds;
use crate::draw::svg::{duration, escape, num, text_width};

/// Left of the plot: row labels.
const LABELS: f64 = 210.0;
/// The plot's width.
const PLOT: f64 = 1000.0;
const AXIS: f64 = 22.0;
const PHASES: f64 = 20.0;
const BUSY: f64 = 64.0;
const GAP: f64 = 12.0;

/// A round step for ticks: about ten along the axis.
fn tick_step(total: f64) -> f64 {
    let raw = (total / 10.0).max(0.001);
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude)
}

fn legend(out: &mut String, t: &Timings) {
    let mut present: Vec<&str> = t.steps.iter().map(|s| s.step.as_str()).collect();
    present.sort_by_key(|k| (kinds::order(k), *k));
    present.dedup();
    let mut items: Vec<(String, String)> = present
        .iter()
        .map(|k| (k.to_string(), format!("fill=\"{}\"", kinds::colour(k))))
        .collect();
    items.push(("built".into(), "fill=\"#777\"".into()));
    items.push(("local hit".into(), "fill=\"#777\" class=\"fresh\"".into()));
    items.push(("remote hit".into(), "fill=\"url(#remote-legend)\"".into()));
    items.push((
        "critical path".into(),
        "fill=\"#fff\" class=\"critical\"".into(),
    ));
    let width: f64 = items
        .iter()
        .map(|(name, _)| 24.0 + text_width(name, 11.0) + 14.0)
        .sum();
    let _ = write!(
        out,
        "<div class=\"legend\"><svg width=\"{}\" height=\"18\" role=\"img\"><title>legend</title>\
         <defs><pattern id=\"remote-legend\" width=\"5\" height=\"5\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">\
         <rect width=\"5\" height=\"5\" fill=\"#777\" fill-opacity=\".35\"/><rect width=\"2\" height=\"5\" fill=\"#777\"/></pattern></defs>",
        num(width)
    );
    let mut x = 1.0;
    for (name, fill) in &items {
        let _ = write!(
            out,
            "<rect x=\"{}\" y=\"3\" width=\"18\" height=\"11\" {fill}/><text x=\"{}\" y=\"13\">{}</text>",
            num(x),
            num(x + 24.0),
            escape(name)
        );
        x += 24.0 + text_width(name, 11.0) + 14.0;
    }
    out.push_str("</svg></div>\n");
}

/// The timeline section of the page of `t`.
pub(super) fn timeline(out: &mut String, t: &Timings) {
    let total = t.total_ms.max(1.0);
    let scale = |ms: f64| LABELS + ms / total * PLOT;
    // Rows: one per unit, in the order they first started.
    let mut rows: Vec<(String, Vec<usize>)> = Vec::new();
    let mut row_of: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let mut order: Vec<usize> = (0..t.steps.len()).collect();
    order.sort_by(|&a, &b| {
        t.steps[a]
            .start_ms
            .total_cmp(&t.steps[b].start_ms)
            .then(a.cmp(&b))
    });
    for &i in &order {
        let s = &t.steps[i];
        // A service's steps share a row, a mesh's (policy, upload, chart)
        // theirs; a base is a row of its own.
        let what = if kinds::of_a_service(&s.step) {
            ""
        } else if s.step == "base" {
            "base "
        } else {
            "mesh "
        };
        let at = *row_of.entry((what, s.unit.as_str())).or_insert_with(|| {
            rows.push((format!("{what}{}", s.unit), Vec::new()));
            rows.len() - 1
        });
        rows[at].1.push(i);
    }
    let row_h = if rows.len() > 400 { 8.0 } else { 13.0 };
    let gantt_top = AXIS + PHASES + GAP + BUSY + GAP;
    let height = gantt_top + rows.len() as f64 * row_h + 8.0;
    let width = LABELS + PLOT + 20.0;
    let critical = t.critical_path();
    let mut on_path = vec![false; t.steps.len()];
    for &i in &critical.steps {
        on_path[i] = true;
    }

    out.push_str("<section id=\"timeline\"><h2>Timeline</h2>\n");
    let _ = writeln!(
        out,
        "<p>One row per service (its steps in a chain), per mesh (policy, upload, chart) and per base; a bar per step that ran. \
         Hover a bar for its step, time, worker and why it was built.{}</p>",
        if t.reused > 0 {
            format!(" {} steps reused unchecked are not drawn.", t.reused)
        } else {
            String::new()
        }
    );
    legend(out, t);
    let _ = write!(
        out,
        "<div class=\"plot\"><svg width=\"{w}\" height=\"{h}\" role=\"img\"><title>timeline</title>\n<defs>",
        w = num(width),
        h = num(height)
    );
    let mut present: Vec<&str> = t.steps.iter().map(|s| s.step.as_str()).collect();
    present.sort();
    present.dedup();
    for k in &present {
        let _ = write!(
            out,
            "<pattern id=\"remote-{k}\" width=\"5\" height=\"5\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">\
             <rect width=\"5\" height=\"5\" fill=\"{c}\" fill-opacity=\".35\"/><rect width=\"2\" height=\"5\" fill=\"{c}\"/></pattern>",
            k = escape(k),
            c = kinds::colour(k)
        );
    }
    out.push_str("</defs>\n");

    // Axis and grid.
    let step = tick_step(total);
    let mut tick = 0.0;
    while tick <= total + 1e-9 {
        let x = scale(tick);
        let _ = writeln!(
            out,
            "<line class=\"grid\" x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\"/><text class=\"tick\" x=\"{x}\" y=\"14\" text-anchor=\"middle\">{}</text>",
            num(AXIS - 4.0),
            num(height),
            duration(tick),
            x = num(x)
        );
        tick += step;
    }

    // Phases.
    let _ = writeln!(
        out,
        "<text x=\"4\" y=\"{}\">phases</text>",
        num(AXIS + 14.0)
    );
    for p in &t.phases {
        let (x0, x1) = (scale(p.start_ms), scale(p.end_ms));
        let fill = match p.name.as_str() {
            "load" => "#c6d4ea",
            "plan" => "#a9c1e6",
            "run" => "#d3e6c8",
            "record" => "#ecd6bd",
            _ => "#dddddd",
        };
        let _ = write!(
            out,
            "<rect class=\"phase\" data-phase=\"{name}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{fill}\"><title>{name}: {} (from {} to {})</title></rect>",
            num(x0),
            num(AXIS),
            num((x1 - x0).max(1.0)),
            num(PHASES - 2.0),
            duration(p.end_ms - p.start_ms),
            duration(p.start_ms),
            duration(p.end_ms),
            name = escape(&p.name),
        );
        if x1 - x0 > text_width(&p.name, 11.0) + 6.0 {
            let _ = write!(
                out,
                "<text x=\"{}\" y=\"{}\">{}</text>",
                num(x0 + 3.0),
                num(AXIS + 13.0),
                escape(&p.name)
            );
        }
        out.push('\n');
    }

    // Busy workers.
    let busy = t.busy();
    let top = AXIS + PHASES + GAP;
    let most = busy
        .iter()
        .map(|b| b.1)
        .max()
        .unwrap_or(0)
        .max(t.pool())
        .max(1) as f64;
    let y = |n: usize| top + BUSY - n as f64 / most * BUSY;
    let _ = writeln!(
        out,
        "<text x=\"4\" y=\"{}\">workers busy</text><text x=\"4\" y=\"{}\" class=\"tick\">0 … {}</text>",
        num(top + 14.0),
        num(top + 28.0),
        most as usize
    );
    if let Some(&(first, _)) = busy.first() {
        let _ = write!(
            out,
            "<path class=\"busy\" d=\"M{},{}",
            num(scale(first)),
            num(y(0))
        );
        for &(at, n) in &busy {
            let _ = write!(out, "H{}V{}", num(scale(at)), num(y(n)));
        }
        let _ = writeln!(out, "Z\"><title>workers busy over time</title></path>");
    }
    let _ = writeln!(
        out,
        "<line class=\"jobs\" x1=\"{}\" y1=\"{jy}\" x2=\"{}\" y2=\"{jy}\"/><text x=\"{}\" y=\"{}\" class=\"tick\">{}</text>",
        num(LABELS),
        num(LABELS + PLOT),
        num(LABELS + PLOT + 2.0),
        num(y(t.pool()) + 4.0),
        match t.fewer_workers() {
            Some(_) => format!("{} workers", t.workers),
            None => format!("-j {}", t.jobs),
        },
        jy = num(y(t.pool())),
    );

    // The Gantt rows.
    for (r, (label, steps)) in rows.iter().enumerate() {
        let row_y = gantt_top + r as f64 * row_h;
        if row_h >= 10.0 {
            let short: String = if label.chars().count() > 28 {
                label.chars().take(27).chain(['…']).collect()
            } else {
                label.clone()
            };
            let _ = write!(
                out,
                "<text x=\"4\" y=\"{}\">{}</text>",
                num(row_y + row_h - 3.0),
                escape(&short)
            );
        }
        for &i in steps {
            bar(
                out,
                &t.steps[i],
                on_path[i],
                scale(t.steps[i].start_ms),
                row_y,
                t,
                row_h,
            );
        }
        out.push('\n');
    }
    out.push_str("</svg></div></section>\n");
}

fn bar(out: &mut String, s: &StepTime, critical: bool, x: f64, y: f64, t: &Timings, row_h: f64) {
    let w = (s.ms as f64 / t.total_ms.max(1.0) * PLOT).max(1.0);
    let fill = if s.status == "remote" {
        format!("url(#remote-{})", escape(&s.step))
    } else {
        kinds::colour(&s.step).to_string()
    };
    let mut tip = format!(
        "{}: {} in {} ms, {} to {}",
        s.id(),
        status_word(&s.status),
        s.ms,
        duration(s.start_ms),
        duration(s.end_ms())
    );
    if let Some(w) = s.worker {
        let _ = write!(tip, ", worker {w}");
    }
    if critical {
        tip.push_str(", on the critical path");
    }
    if let Some(why) = s.why.as_deref().filter(|w| !w.is_empty()) {
        let _ = write!(
            tip,
            "\n{}: {why}",
            if s.status == "failed" { "error" } else { "why" }
        );
    }
    let _ = write!(
        out,
        "<rect class=\"bar {}{}\" data-step=\"{}\" data-ms=\"{}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{fill}\"><title>{}</title></rect>",
        escape(&s.status),
        if critical { " critical" } else { "" },
        escape(&s.id()),
        s.ms,
        num(x),
        num(y + 1.0),
        num(w),
        num(row_h - 2.5),
        escape(&tip)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(1000.0), 100.0);
        assert_eq!(tick_step(130.0), 20.0);
        assert_eq!(tick_step(4.0), 0.5);
    }
}
