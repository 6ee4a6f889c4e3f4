//! A layered layout of a DAG, drawn left to right (Sugiyama's method, kept
//! small): layers by longest path, a dummy point wherever an edge crosses a
//! layer, orders that cut crossings by barycentres, and heights that put
//! each box near its neighbours without overlaps (least squares under the
//! order, solved by merging blocks).
//!
//! Positions are a pure function of the input: the same graph gives the same
//! picture, byte for byte.

use std::collections::VecDeque;

/// The size of a box to place.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Size {
    pub w: f64,
    pub h: f64,
}

/// A placed box: its top left corner and size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

/// The gaps of a layout.
#[derive(Clone, Copy, Debug)]
pub struct Spacing {
    /// Between two layers (columns), where the edges run.
    pub layer_gap: f64,
    /// Between two boxes of a layer.
    pub node_gap: f64,
    /// Around the whole picture.
    pub margin: f64,
}

/// Where everything goes.
#[derive(Clone, Debug)]
pub struct Layout {
    /// Per box, in the input's order.
    pub nodes: Vec<Rect>,
    /// Per edge, in the input's order: the points of its route, from the
    /// middle of the source's right side to the middle of the target's left
    /// side (empty for an edge that names a box twice or none).
    pub edges: Vec<Vec<(f64, f64)>>,
    pub width: f64,
    pub height: f64,
}

/// Lays out boxes of `sizes` joined by `edges` (`(from, to)` indices).
/// Edges that close a cycle are drawn but do not shape the layers.
pub fn layered(sizes: &[Size], edges: &[(usize, usize)], spacing: &Spacing) -> Layout {
    let n = sizes.len();
    let valid = |&(a, b): &(usize, usize)| a < n && b < n && a != b;
    let mut succs: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b) in edges.iter().filter(|e| valid(e)) {
        if !succs[a].contains(&b) {
            succs[a].push(b);
            preds[b].push(a);
        }
    }
    let layer = layers(&succs, &preds);

    // Virtual nodes: the boxes, then one dummy per layer an edge crosses.
    let mut v_layer: Vec<usize> = layer.clone();
    let mut v_size: Vec<Size> = sizes.to_vec();
    let mut chains: Vec<Vec<usize>> = Vec::with_capacity(edges.len());
    for e in edges {
        if !valid(e) {
            chains.push(Vec::new());
            continue;
        }
        let (a, b) = *e;
        let mut chain = vec![a];
        if layer[b] > layer[a] {
            for l in layer[a] + 1..layer[b] {
                v_layer.push(l);
                v_size.push(Size { w: 0.0, h: 0.0 });
                chain.push(v_layer.len() - 1);
            }
        }
        chain.push(b);
        chains.push(chain);
    }
    let vn = v_layer.len();
    let mut v_preds: Vec<Vec<usize>> = vec![Vec::new(); vn];
    let mut v_succs: Vec<Vec<usize>> = vec![Vec::new(); vn];
    for chain in &chains {
        for pair in chain.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if v_layer[b] == v_layer[a] + 1 && !v_succs[a].contains(&b) {
                v_succs[a].push(b);
                v_preds[b].push(a);
            }
        }
    }
    let layer_count = v_layer.iter().max().map_or(0, |m| m + 1);
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); layer_count];
    for (v, &l) in v_layer.iter().enumerate() {
        rows[l].push(v);
    }
    order_layers(&mut rows, &v_preds, &v_succs);

    // Columns.
    let widths: Vec<f64> = rows
        .iter()
        .map(|r| r.iter().map(|&v| v_size[v].w).fold(0.0, f64::max))
        .collect();
    let mut column_x = Vec::with_capacity(layer_count);
    let mut x = spacing.margin;
    for w in &widths {
        column_x.push(x);
        x += w + spacing.layer_gap;
    }
    let width = if layer_count == 0 {
        2.0 * spacing.margin
    } else {
        x - spacing.layer_gap + spacing.margin
    };

    let tops = heights(&rows, &v_size, &v_preds, &v_succs, spacing, n);
    let top = tops.iter().copied().fold(f64::INFINITY, f64::min);
    let shift = if top.is_finite() {
        spacing.margin - top
    } else {
        0.0
    };
    let bottom = (0..vn)
        .map(|v| tops[v] + shift + v_size[v].h)
        .fold(spacing.margin, f64::max);
    let nodes: Vec<Rect> = (0..n)
        .map(|v| Rect {
            x: column_x[layer[v]] + (widths[layer[v]] - sizes[v].w) / 2.0,
            y: tops[v] + shift,
            w: sizes[v].w,
            h: sizes[v].h,
        })
        .collect();
    let centre_y = |v: usize| tops[v] + shift + v_size[v].h / 2.0;
    let routes = chains
        .iter()
        .map(|chain| {
            let (Some(&a), Some(&b)) = (chain.first(), chain.last()) else {
                return Vec::new();
            };
            let mut points = vec![(nodes[a].x + nodes[a].w, centre_y(a))];
            for &d in &chain[1..chain.len() - 1] {
                let l = v_layer[d];
                points.push((column_x[l], centre_y(d)));
                points.push((column_x[l] + widths[l], centre_y(d)));
            }
            points.push((nodes[b].x, centre_y(b)));
            points
        })
        .collect();
    Layout {
        nodes,
        edges: routes,
        width,
        height: bottom + spacing.margin,
    }
}

/// Each box's layer: one past its latest predecessor (longest path), and a
/// box with no predecessor just before its earliest successor.
fn layers(succs: &[Vec<usize>], preds: &[Vec<usize>]) -> Vec<usize> {
    let n = succs.len();
    let mut indegree: Vec<usize> = preds.iter().map(Vec::len).collect();
    let mut queue: VecDeque<usize> = (0..n).filter(|&v| indegree[v] == 0).collect();
    let mut topo = Vec::with_capacity(n);
    let mut placed = vec![false; n];
    loop {
        while let Some(v) = queue.pop_front() {
            placed[v] = true;
            topo.push(v);
            for &s in &succs[v] {
                if placed[s] {
                    // An edge back into a broken cycle.
                    continue;
                }
                indegree[s] -= 1;
                if indegree[s] == 0 {
                    queue.push_back(s);
                }
            }
        }
        // A cycle: break it at its first box.
        match (0..n).find(|&v| !placed[v] && indegree[v] > 0) {
            Some(v) => {
                indegree[v] = 0;
                queue.push_back(v);
            }
            None => break,
        }
    }
    let mut position = vec![0; n];
    for (i, &v) in topo.iter().enumerate() {
        position[v] = i;
    }
    let mut layer = vec![0usize; n];
    for &v in &topo {
        for &p in &preds[v] {
            if position[p] < position[v] {
                layer[v] = layer[v].max(layer[p] + 1);
            }
        }
    }
    for &v in topo.iter().rev() {
        if preds[v].is_empty() {
            if let Some(first) = succs[v]
                .iter()
                .filter(|&&s| position[s] > position[v])
                .map(|&s| layer[s])
                .min()
            {
                layer[v] = first.saturating_sub(1).max(layer[v]);
            }
        }
    }
    layer
}

/// Orders each layer to cut crossings: sweeps down and up, each box moved to
/// the mean position of its neighbours in the layer before.
fn order_layers(rows: &mut [Vec<usize>], preds: &[Vec<usize>], succs: &[Vec<usize>]) {
    let vn = preds.len();
    let mut position = vec![0.0f64; vn];
    let set_positions = |rows: &[Vec<usize>], position: &mut Vec<f64>| {
        for row in rows {
            for (i, &v) in row.iter().enumerate() {
                position[v] = i as f64;
            }
        }
    };
    set_positions(rows, &mut position);
    let sweep = |row: &mut Vec<usize>, position: &[f64], next: &[Vec<usize>]| {
        let key = |v: usize| {
            if next[v].is_empty() {
                position[v]
            } else {
                next[v].iter().map(|&u| position[u]).sum::<f64>() / next[v].len() as f64
            }
        };
        let mut keyed: Vec<(f64, usize)> = row.iter().map(|&v| (key(v), v)).collect();
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
        *row = keyed.into_iter().map(|(_, v)| v).collect();
    };
    for _ in 0..6 {
        for l in 1..rows.len() {
            sweep(&mut rows[l], &position, preds);
            set_positions(&rows[l..=l], &mut position);
        }
        for l in (0..rows.len().saturating_sub(1)).rev() {
            sweep(&mut rows[l], &position, succs);
            set_positions(&rows[l..=l], &mut position);
        }
    }
}

/// The top of every virtual node: stacked in order, then pulled towards its
/// neighbours' centres, sweeping down and up.
fn heights(
    rows: &[Vec<usize>],
    size: &[Size],
    preds: &[Vec<usize>],
    succs: &[Vec<usize>],
    spacing: &Spacing,
    real: usize,
) -> Vec<f64> {
    let vn = size.len();
    let gap = |a: usize, b: usize| {
        if a >= real && b >= real {
            spacing.node_gap / 3.0
        } else {
            spacing.node_gap
        }
    };
    let mut top = vec![0.0f64; vn];
    for row in rows {
        let mut y = 0.0;
        for (i, &v) in row.iter().enumerate() {
            if i > 0 {
                y += gap(row[i - 1], v);
            }
            top[v] = y;
            y += size[v].h;
        }
    }
    let centre = |top: &[f64], v: usize| top[v] + size[v].h / 2.0;
    for round in 0..4 {
        let down = round % 2 == 0;
        let order: Vec<usize> = if down {
            (1..rows.len()).collect()
        } else {
            (0..rows.len().saturating_sub(1)).rev().collect()
        };
        for l in order {
            let next = if down { preds } else { succs };
            let row = &rows[l];
            let desired: Vec<f64> = row
                .iter()
                .map(|&v| {
                    if next[v].is_empty() {
                        centre(&top, v)
                    } else {
                        next[v].iter().map(|&u| centre(&top, u)).sum::<f64>() / next[v].len() as f64
                    }
                })
                .collect();
            let placed = place(row, &desired, size, &gap);
            for (&v, y) in row.iter().zip(placed) {
                top[v] = y;
            }
        }
    }
    top
}

/// Tops for the boxes of `row`, in that order and at least their gap apart,
/// as close as can be (least squares) to centres at `desired`.
fn place(
    row: &[usize],
    desired: &[f64],
    size: &[Size],
    gap: &dyn Fn(usize, usize) -> f64,
) -> Vec<f64> {
    // Each box's offset from the first box of the row if all were packed.
    let mut offset = Vec::with_capacity(row.len());
    let mut at = 0.0;
    for (i, &v) in row.iter().enumerate() {
        if i > 0 {
            at += size[row[i - 1]].h + gap(row[i - 1], v);
        }
        offset.push(at);
    }
    // Blocks of packed boxes: (first, last, sum of wanted starts).
    let mut blocks: Vec<(usize, usize, f64)> = Vec::new();
    for (i, &v) in row.iter().enumerate() {
        let want = desired[i] - size[v].h / 2.0 - offset[i];
        blocks.push((i, i, want));
        while blocks.len() > 1 {
            let (f2, l2, s2) = blocks[blocks.len() - 1];
            let (f1, l1, s1) = blocks[blocks.len() - 2];
            let start1 = s1 / (l1 - f1 + 1) as f64;
            let start2 = s2 / (l2 - f2 + 1) as f64;
            if start2 >= start1 {
                break;
            }
            blocks.pop();
            let last = blocks.len() - 1;
            blocks[last] = (f1, l2, s1 + s2);
        }
    }
    let mut tops = vec![0.0; row.len()];
    for (first, last, sum) in blocks {
        let start = sum / (last - first + 1) as f64;
        for i in first..=last {
            tops[i] = start + offset[i];
        }
    }
    tops
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPACING: Spacing = Spacing {
        layer_gap: 40.0,
        node_gap: 10.0,
        margin: 5.0,
    };

    fn boxes(n: usize) -> Vec<Size> {
        vec![Size { w: 50.0, h: 20.0 }; n]
    }

    fn overlap(a: &Rect, b: &Rect) -> bool {
        a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h
    }

    #[test]
    fn a_chain_runs_left_to_right() {
        let l = layered(&boxes(4), &[(0, 1), (1, 2), (2, 3)], &SPACING);
        for pair in l.nodes.windows(2) {
            assert!(pair[1].x >= pair[0].x + pair[0].w + 40.0, "{l:?}");
            assert_eq!(pair[0].y, pair[1].y, "a chain is straight");
        }
        assert_eq!(l.width, 5.0 + 4.0 * 50.0 + 3.0 * 40.0 + 5.0);
    }

    #[test]
    fn no_two_boxes_overlap_and_edges_join_their_boxes() {
        // A fan: one base into eight services, each into a policy and a chart,
        // the policy into the chart (as a mesh's graph).
        let mut edges = Vec::new();
        for s in 1..=8 {
            edges.push((0, s));
            edges.push((s, 9));
            edges.push((s, 10));
        }
        edges.push((9, 10));
        let l = layered(&boxes(11), &edges, &SPACING);
        for (i, a) in l.nodes.iter().enumerate() {
            for b in &l.nodes[i + 1..] {
                assert!(!overlap(a, b), "{a:?} overlaps {b:?}");
            }
        }
        for (e, route) in edges.iter().zip(&l.edges) {
            let (from, to) = (l.nodes[e.0], l.nodes[e.1]);
            assert_eq!(route[0], (from.x + from.w, from.y + from.h / 2.0));
            assert_eq!(*route.last().unwrap(), (to.x, to.y + to.h / 2.0));
        }
        // service → chart skips the policy's layer: one dummy, two points.
        assert_eq!(l.edges[2].len(), 4);
        assert!(l.nodes.iter().all(|r| r.y >= 5.0 && r.y + r.h <= l.height));
    }

    #[test]
    fn a_cycle_is_drawn_not_looped_on() {
        let l = layered(
            &boxes(3),
            &[(0, 1), (1, 2), (2, 0), (1, 1), (7, 0)],
            &SPACING,
        );
        assert_eq!(l.nodes.len(), 3);
        assert!(l.edges[3].is_empty() && l.edges[4].is_empty());
        assert_eq!(l.edges[2].len(), 2);
    }

    #[test]
    fn the_same_graph_gives_the_same_layout() {
        let edges = [(0, 2), (1, 2), (2, 3), (0, 3)];
        let a = layered(&boxes(4), &edges, &SPACING);
        let b = layered(&boxes(4), &edges, &SPACING);
        assert_eq!(a.nodes, b.nodes);
        assert_eq!(a.edges, b.edges);
    }
}
