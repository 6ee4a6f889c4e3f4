//! Draws scone's architecture — its modules and how data flows between them —
//! as an SVG on stdout, with scone's own layered layout (`scone::draw`):
//!
//! ```text
//! cargo run --example architecture > docs/figures/architecture.svg
//! ```
//!
//! `scripts/figures.sh` remakes it with the other figures; the modules are
//! those of `docs/architecture.md`.

use scone::draw::layout::{self, Size, Spacing};
use scone::draw::svg::{escape, num, text_width, FONT};
use std::fmt::Write as _;

/// A box: its key, its module(s), what it does, and its colour.
struct Part {
    key: &'static str,
    module: &'static str,
    job: &'static str,
    fill: &'static str,
}

const INPUT: &str = "#eef3f8";
const CODE: &str = "#ffffff";
const STATE: &str = "#fdf3e3";
const OUTPUT: &str = "#eaf5ea";

const PARTS: &[Part] = &[
    Part {
        key: "files",
        module: "mesh.yml service.yml",
        job: "and scone.toml",
        fill: INPUT,
    },
    Part {
        key: "load",
        module: "src/manifest",
        job: "src/workspace: load",
        fill: CODE,
    },
    Part {
        key: "state",
        module: "build state",
        job: "what changed",
        fill: STATE,
    },
    Part {
        key: "plan",
        module: "src/plan",
        job: "the step DAG",
        fill: CODE,
    },
    Part {
        key: "engine",
        module: "src/engine",
        job: "schedule, cache",
        fill: CODE,
    },
    Part {
        key: "store",
        module: "store",
        job: "blobs, records",
        fill: STATE,
    },
    Part {
        key: "remote",
        module: "src/remote",
        job: "shared cache",
        fill: STATE,
    },
    Part {
        key: "steps",
        module: "src/steps",
        job: "one file a kind",
        fill: CODE,
    },
    Part {
        key: "libs",
        module: "src/oci sgx helm attest",
        job: "image enclave chart SBOM",
        fill: CODE,
    },
    Part {
        key: "cas",
        module: "src/cas",
        job: "sessions",
        fill: CODE,
    },
    Part {
        key: "events",
        module: "src/cli",
        job: "output, timings",
        fill: CODE,
    },
    Part {
        key: "target",
        module: "target/",
        job: "the outputs",
        fill: OUTPUT,
    },
    Part {
        key: "effects",
        module: "CAS, registry",
        job: "apply's effects",
        fill: OUTPUT,
    },
    Part {
        key: "verify",
        module: "src/verify",
        job: "verify, apply --plan",
        fill: CODE,
    },
];

/// What the fills mean.
const LEGEND: &[(&str, &str)] = &[
    (INPUT, "what the user writes"),
    (CODE, "scone's modules"),
    (STATE, "what scone keeps"),
    (OUTPUT, "what it makes and does"),
];

/// Who hands what to whom.
const FLOWS: &[(&str, &str)] = &[
    ("files", "load"),
    ("load", "plan"),
    ("plan", "engine"),
    ("state", "engine"),
    ("engine", "store"),
    ("store", "remote"),
    ("engine", "steps"),
    ("steps", "libs"),
    ("steps", "cas"),
    ("engine", "events"),
    ("libs", "target"),
    ("cas", "effects"),
    ("target", "verify"),
    ("effects", "verify"),
];

const TITLE: f64 = 12.0;
const JOB: f64 = 10.0;

fn main() {
    let sizes: Vec<Size> = PARTS
        .iter()
        .map(|p| Size {
            w: text_width(p.module, TITLE).max(text_width(p.job, JOB)) + 20.0,
            h: 38.0,
        })
        .collect();
    let at = |key: &str| {
        PARTS
            .iter()
            .position(|p| p.key == key)
            .expect("a known part")
    };
    let edges: Vec<(usize, usize)> = FLOWS.iter().map(|(a, b)| (at(a), at(b))).collect();
    let l = layout::layered(
        &sizes,
        &edges,
        &Spacing {
            layer_gap: 36.0,
            node_gap: 16.0,
            margin: 12.0,
        },
    );
    let header = 28.0;
    let legend = 26.0;
    let (w, h) = (l.width.ceil(), (l.height + header + legend).ceil());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"{FONT}\">\n\
         <style>.e{{fill:none;stroke:#7a7a7a;stroke-width:1.3}}text{{fill:#222}}</style>\n\
         <defs><marker id=\"arrow\" viewBox=\"0 0 8 8\" refX=\"8\" refY=\"4\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0L8,4L0,8z\" fill=\"#7a7a7a\"/></marker></defs>\n\
         <rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n\
         <text x=\"12\" y=\"19\" font-size=\"13\">scone: manifest → plan → engine → steps → outputs and effects</text>\n\
         <g transform=\"translate(0,{header})\">"
    );
    for route in l.edges.iter().filter(|r| r.len() >= 2) {
        let _ = write!(
            out,
            "<path class=\"e\" marker-end=\"url(#arrow)\" d=\"M{},{}",
            num(route[0].0),
            num(route[0].1)
        );
        for pair in route.windows(2) {
            let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
            let dx = (x1 - x0) / 2.0;
            let _ = write!(
                out,
                "C{},{} {},{} {},{}",
                num(x0 + dx),
                num(y0),
                num(x1 - dx),
                num(y1),
                num(x1),
                num(y1)
            );
        }
        out.push_str("\"/>\n");
    }
    for (p, r) in PARTS.iter().zip(&l.nodes) {
        let _ = writeln!(
            out,
            "<g><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"5\" fill=\"{}\" stroke=\"#555\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"{TITLE}\">{}</text><text x=\"{}\" y=\"{}\" font-size=\"{JOB}\" fill=\"#555\">{}</text></g>",
            num(r.x),
            num(r.y),
            num(r.w),
            num(r.h),
            p.fill,
            num(r.x + 10.0),
            num(r.y + 16.0),
            escape(p.module),
            num(r.x + 10.0),
            num(r.y + 30.0),
            escape(p.job),
        );
    }
    out.push_str("</g>\n");
    let mut x = 12.0;
    let y = header + l.height + 6.0;
    for (fill, what) in LEGEND {
        let _ = writeln!(
            out,
            "<rect x=\"{}\" y=\"{}\" width=\"16\" height=\"11\" rx=\"2\" fill=\"{fill}\" stroke=\"#555\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"{JOB}\">{}</text>",
            num(x),
            num(y),
            num(x + 22.0),
            num(y + 9.5),
            escape(what)
        );
        x += 22.0 + text_width(what, JOB) + 18.0;
    }
    out.push_str("</svg>\n");
    print!("{out}");
}
