//! The step graph as a picture (`scone graph --format svg`): one box per
//! step, coloured by kind — or, by default, one box per service holding a
//! chip per step kind of its chain, and the services that share every
//! neighbour (a mesh of a thousand alike) drawn as one block of names, with
//! one edge in and out. Laid out by [`super::layout`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::kinds;
use super::layout::{self, Size, Spacing};
use super::svg::{escape, num, text_width, FONT};
use crate::engine::StepId;

/// How many services that share every neighbour are drawn as one block.
pub const BLOCK_AT: usize = 8;

/// How to draw.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// One box per step instead of one per service.
    pub expand: bool,
}

/// What one box stands for.
#[derive(Debug)]
enum Shape {
    /// One step.
    Step(StepId),
    /// The steps of one service.
    Service { name: String, kinds: Vec<String> },
    /// Services with the same neighbours.
    Block {
        names: Vec<String>,
        kinds: Vec<String>,
    },
}

const LABEL: f64 = 12.0;
const SMALL: f64 = 9.0;
const CELL_H: f64 = 14.0;
const HEADER: f64 = 26.0;
const LEGEND: f64 = 30.0;

/// The picture of the graph of steps `ids` and `(from, to)` `edges`, as a
/// standalone SVG file.
pub fn svg(ids: &[StepId], edges: &[(StepId, StepId)], options: Options) -> String {
    let (shapes, links) = shapes(ids, edges, options);
    let sizes: Vec<Size> = shapes.iter().map(size).collect();
    let spacing = Spacing {
        layer_gap: 48.0,
        node_gap: 14.0,
        margin: 12.0,
    };
    let layout = layout::layered(&sizes, &links, &spacing);
    let services = shapes
        .iter()
        .map(|s| match s {
            Shape::Step(_) => 0,
            Shape::Service { .. } => 1,
            Shape::Block { names, .. } => names.len(),
        })
        .sum::<usize>();
    let mut present: Vec<&str> = ids.iter().map(|id| id.kind.as_str()).collect();
    present.sort_by_key(|k| (kinds::order(k), *k));
    present.dedup();
    let legend_w = present
        .iter()
        .map(|k| 22.0 + text_width(k, 11.0) + 14.0)
        .sum::<f64>()
        + 24.0;
    let width = layout.width.max(legend_w).max(320.0).ceil();
    let height = (HEADER + layout.height + LEGEND).ceil();

    let mut out = String::with_capacity(4096 + 160 * ids.len());
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" \
         width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"{FONT}\" font-size=\"{LABEL}\">\n",
        w = num(width),
        h = num(height),
    );
    out.push_str(
        "<style>.e{fill:none;stroke:#7a7a7a;stroke-width:1.2}\
         .b{fill:#fff;stroke:#444;stroke-width:1.2}\
         .c{stroke:#fff;stroke-width:.5}\
         text{fill:#222}.s{font-size:9px}</style>\n\
         <defs><marker id=\"arrow\" viewBox=\"0 0 8 8\" refX=\"8\" refY=\"4\" markerWidth=\"7\" \
         markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0L8,4L0,8z\" fill=\"#7a7a7a\"/></marker></defs>\n",
    );
    let _ = writeln!(
        out,
        "<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n<text x=\"12\" y=\"18\">{} steps{}</text>",
        ids.len(),
        if services > 0 {
            format!(", {services} services")
        } else {
            String::new()
        }
    );
    let _ = writeln!(out, "<g transform=\"translate(0,{HEADER})\">");
    for route in &layout.edges {
        if route.len() < 2 {
            continue;
        }
        out.push_str("<path class=\"e\" marker-end=\"url(#arrow)\" d=\"");
        path(&mut out, route);
        out.push_str("\"/>\n");
    }
    for (i, (shape, r)) in shapes.iter().zip(&layout.nodes).enumerate() {
        draw(&mut out, i, shape, r.x, r.y, r.w, r.h);
    }
    out.push_str("</g>\n");
    let mut x = 12.0;
    let y = HEADER + layout.height + 8.0;
    for k in present {
        let _ = writeln!(
            out,
            "<rect x=\"{}\" y=\"{}\" width=\"16\" height=\"10\" rx=\"2\" fill=\"{}\"/><text x=\"{}\" y=\"{}\" font-size=\"11\">{}</text>",
            num(x),
            num(y),
            kinds::colour(k),
            num(x + 22.0),
            num(y + 9.0),
            escape(k)
        );
        x += 22.0 + text_width(k, 11.0) + 14.0;
    }
    out.push_str("</svg>\n");
    out
}

/// The boxes to draw and the edges between them.
fn shapes(
    ids: &[StepId],
    edges: &[(StepId, StepId)],
    options: Options,
) -> (Vec<Shape>, Vec<(usize, usize)>) {
    let mut shapes: Vec<Shape> = Vec::new();
    let mut by_key: BTreeMap<(bool, &str), usize> = BTreeMap::new();
    let mut of_step: BTreeMap<&StepId, usize> = BTreeMap::new();
    for id in ids {
        let collapse = !options.expand && kinds::of_a_service(&id.kind);
        let at = if collapse {
            *by_key.entry((true, id.unit.as_str())).or_insert_with(|| {
                shapes.push(Shape::Service {
                    name: id.unit.clone(),
                    kinds: Vec::new(),
                });
                shapes.len() - 1
            })
        } else {
            shapes.push(Shape::Step(id.clone()));
            shapes.len() - 1
        };
        if let Shape::Service { kinds: k, .. } = &mut shapes[at] {
            if !k.contains(&id.kind) {
                k.push(id.kind.clone());
                k.sort_by_key(|k| kinds::order(k));
            }
        }
        of_step.insert(id, at);
    }
    let mut links: BTreeSet<(usize, usize)> = edges
        .iter()
        .filter_map(|(a, b)| Some((*of_step.get(a)?, *of_step.get(b)?)))
        .filter(|(a, b)| a != b)
        .collect();
    if options.expand {
        return (shapes, links.into_iter().collect());
    }

    // Services with the same neighbours, many of them: one block.
    let mut classes: BTreeMap<(Vec<usize>, Vec<usize>), Vec<usize>> = BTreeMap::new();
    for (i, shape) in shapes.iter().enumerate() {
        if matches!(shape, Shape::Service { .. }) {
            let preds = links.iter().filter(|l| l.1 == i).map(|l| l.0).collect();
            let succs = links.iter().filter(|l| l.0 == i).map(|l| l.1).collect();
            classes.entry((preds, succs)).or_default().push(i);
        }
    }
    let mut into: Vec<usize> = (0..shapes.len()).collect();
    let mut blocks = Vec::new();
    for members in classes.into_values().filter(|m| m.len() >= BLOCK_AT) {
        let mut names = Vec::new();
        let mut all_kinds: Vec<String> = Vec::new();
        for &m in &members {
            if let Shape::Service { name, kinds: k } = &shapes[m] {
                names.push(name.clone());
                for kind in k {
                    if !all_kinds.contains(kind) {
                        all_kinds.push(kind.clone());
                    }
                }
            }
        }
        names.sort();
        all_kinds.sort_by_key(|k| kinds::order(k));
        blocks.push((members, names, all_kinds));
    }
    if blocks.is_empty() {
        return (shapes, links.into_iter().collect());
    }
    let mut keep = vec![true; shapes.len()];
    let mut extra = Vec::new();
    for (members, names, all_kinds) in blocks {
        let at = shapes.len() + extra.len();
        for &m in &members {
            into[m] = at;
            keep[m] = false;
        }
        extra.push(Shape::Block {
            names,
            kinds: all_kinds,
        });
    }
    into.extend(shapes.len()..shapes.len() + extra.len());
    keep.extend(std::iter::repeat_n(true, extra.len()));
    let mut all: Vec<Option<Shape>> = shapes.into_iter().chain(extra).map(Some).collect();
    let mut renumber = vec![usize::MAX; all.len()];
    let mut out = Vec::new();
    for (i, shape) in all.iter_mut().enumerate() {
        if keep[i] {
            renumber[i] = out.len();
            out.extend(shape.take());
        }
    }
    links = links
        .into_iter()
        .map(|(a, b)| (renumber[into[a]], renumber[into[b]]))
        .filter(|(a, b)| a != b)
        .collect();
    (out, links.into_iter().collect())
}

/// Columns of a block of `n` names of up to `chars` characters: about half
/// again as wide as tall.
fn block_grid(n: usize, chars: usize) -> (usize, f64) {
    let cell_w = chars as f64 * SMALL * 0.6 + 8.0;
    let columns = ((n as f64 * CELL_H / cell_w * 1.6).sqrt().ceil() as usize).clamp(1, n.max(1));
    (columns, cell_w)
}

fn size(shape: &Shape) -> Size {
    match shape {
        Shape::Step(id) => Size {
            w: text_width(&id.to_string(), LABEL) + 20.0,
            h: 28.0,
        },
        Shape::Service { name, kinds } => Size {
            w: (text_width(name, LABEL) + 20.0).max(kinds.len() as f64 * 18.0 + 16.0),
            h: 42.0,
        },
        Shape::Block { names, kinds } => {
            let chars = names.iter().map(|n| n.chars().count()).max().unwrap_or(1);
            let (columns, cell_w) = block_grid(names.len(), chars);
            let rows = names.len().div_ceil(columns);
            let title = text_width(&block_title(names.len()), LABEL) + 20.0;
            Size {
                w: (columns as f64 * (cell_w + 2.0) + 14.0).max(title + kinds.len() as f64 * 18.0),
                h: 32.0 + rows as f64 * (CELL_H + 2.0) + 6.0,
            }
        }
    }
}

fn block_title(n: usize) -> String {
    format!("{n} services")
}

/// Colour chips of `kinds` from (x, y), each with its kind as tooltip.
fn chips(out: &mut String, kinds_: &[String], x: f64, y: f64) {
    for (i, k) in kinds_.iter().enumerate() {
        let _ = write!(
            out,
            "<rect class=\"c\" x=\"{}\" y=\"{}\" width=\"16\" height=\"9\" rx=\"2\" fill=\"{}\"><title>{}</title></rect>",
            num(x + i as f64 * 18.0),
            num(y),
            kinds::colour(k),
            escape(k)
        );
    }
}

fn draw(out: &mut String, i: usize, shape: &Shape, x: f64, y: f64, w: f64, h: f64) {
    match shape {
        Shape::Step(id) => {
            let colour = kinds::colour(&id.kind);
            let label = escape(&id.to_string());
            let _ = writeln!(
                out,
                "<g class=\"node step\" id=\"n{i}\"><title>{label}</title><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"5\" fill=\"{colour}\" fill-opacity=\"0.18\" stroke=\"{colour}\" stroke-width=\"1.5\"/><text x=\"{}\" y=\"{}\">{label}</text></g>",
                num(x),
                num(y),
                num(w),
                num(h),
                num(x + 10.0),
                num(y + 18.0),
            );
        }
        Shape::Service { name, kinds: k } => {
            let name = escape(name);
            let _ = write!(
                out,
                "<g class=\"node service\" id=\"n{i}\"><title>service {name}: {}</title><rect class=\"b\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"5\"/><text x=\"{}\" y=\"{}\">{name}</text>",
                escape(&k.join(", ")),
                num(x),
                num(y),
                num(w),
                num(h),
                num(x + 10.0),
                num(y + 17.0),
            );
            chips(out, k, x + 8.0, y + 25.0);
            out.push_str("</g>\n");
        }
        Shape::Block { names, kinds: k } => {
            let title = block_title(names.len());
            let _ = write!(
                out,
                "<g class=\"node block\" id=\"n{i}\"><title>{title}, each {}</title><rect class=\"b\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"6\"/><text x=\"{}\" y=\"{}\">{title}</text>",
                escape(&k.join(" → ")),
                num(x),
                num(y),
                num(w),
                num(h),
                num(x + 10.0),
                num(y + 18.0),
            );
            chips(out, k, x + 18.0 + text_width(&title, LABEL), y + 9.0);
            let chars = names.iter().map(|n| n.chars().count()).max().unwrap_or(1);
            let (columns, cell_w) = block_grid(names.len(), chars);
            for (j, name) in names.iter().enumerate() {
                let cx = x + 7.0 + (j % columns) as f64 * (cell_w + 2.0);
                let cy = y + 30.0 + (j / columns) as f64 * (CELL_H + 2.0);
                let _ = write!(
                    out,
                    "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{CELL_H}\" fill=\"#f1f1f1\"/><text class=\"s\" x=\"{}\" y=\"{}\">{}</text>",
                    num(cx),
                    num(cy),
                    num(cell_w),
                    num(cx + 4.0),
                    num(cy + 10.5),
                    escape(name)
                );
            }
            out.push_str("</g>\n");
        }
    }
}

/// An SVG path through `points`: a curve between columns, a straight line
/// along a row.
fn path(out: &mut String, points: &[(f64, f64)]) {
    let _ = write!(out, "M{},{}", num(points[0].0), num(points[0].1));
    for pair in points.windows(2) {
        let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
        if y0 == y1 {
            let _ = write!(out, "L{},{}", num(x1), num(y1));
        } else {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The graph of a mesh of `n` services on one base.
    fn mesh(n: usize) -> (Vec<StepId>, Vec<(StepId, StepId)>) {
        let mut ids = vec![StepId::new("base", "dir:base")];
        let mut edges = Vec::new();
        let policy = StepId::new("policy", "ns");
        let chart = StepId::new("chart", "ns");
        for s in 0..n {
            let unit = format!("svc-{s:04}");
            let [c, l, i, g] = ["copy", "layer", "image", "sign"].map(|k| StepId::new(k, &unit));
            edges.push((c.clone(), l.clone()));
            edges.push((l.clone(), i.clone()));
            edges.push((ids[0].clone(), i.clone()));
            edges.push((i.clone(), g.clone()));
            edges.push((c.clone(), g.clone()));
            edges.push((g.clone(), policy.clone()));
            edges.push((i.clone(), chart.clone()));
            ids.extend([c, l, i, g]);
        }
        edges.push((policy.clone(), chart.clone()));
        ids.extend([policy, chart]);
        (ids, edges)
    }

    #[test]
    fn services_collapse_into_boxes_and_many_alike_into_one_block() {
        let (ids, edges) = mesh(3);
        let (boxes, links) = shapes(&ids, &edges, Options::default());
        assert_eq!(boxes.len(), 1 + 3 + 2);
        // base → each service, each service → policy and chart, policy → chart.
        assert_eq!(links.len(), 3 + 3 * 2 + 1);
        let (ids, edges) = mesh(BLOCK_AT);
        let (boxes, links) = shapes(&ids, &edges, Options::default());
        assert_eq!(boxes.len(), 1 + 1 + 2, "{boxes:?}");
        assert_eq!(links.len(), 4);
        let (boxes, links) = shapes(&ids, &edges, Options { expand: true });
        assert_eq!(boxes.len(), ids.len());
        assert_eq!(links.len(), edges.len());
    }

    #[test]
    fn the_picture_names_every_service_and_escapes_text() {
        let mut ids = vec![StepId::new("copy", "a<&>b")];
        ids.push(StepId::new("layer", "a<&>b"));
        let edges = vec![(ids[0].clone(), ids[1].clone())];
        let picture = svg(&ids, &edges, Options::default());
        assert!(picture.contains(">a&lt;&amp;&gt;b</text>"), "{picture}");
        assert!(!picture.contains("a<&>b"));
        let (ids, edges) = mesh(40);
        let picture = svg(&ids, &edges, Options::default());
        for s in 0..40 {
            assert!(picture.contains(&format!(">svc-{s:04}</text>")));
        }
        assert!(picture.contains(">40 services</text>"));
    }
}
