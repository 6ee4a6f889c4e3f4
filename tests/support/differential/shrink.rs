//! Delta debugging (Zeller's ddmin): the shortest sublist of a failing edit list
//! that still fails. Each candidate is replayed from a fresh starting workspace;
//! a replay that fails also says how many of its items it needed (the failing
//! prefix), so the rest is dropped at once.

/// Shrinks `items` (which fail) to a sublist that fails and from which no single
/// chunk can be removed at the finest granularity tried (1-minimal when that is
/// single items). `fails` replays a candidate: `Some(n)` when it fails after its
/// first `n` items, `None` when it passes. Returns the sublist and the number of
/// replays.
pub fn shrink<T: Clone>(
    items: &[T],
    mut fails: impl FnMut(&[T]) -> Option<usize>,
) -> (Vec<T>, usize) {
    let mut replays = 0;
    let mut test = |candidate: &[T]| {
        replays += 1;
        fails(candidate)
    };
    let mut current = items.to_vec();
    if current.is_empty() {
        return (current, replays);
    }
    if test(&[]).is_some() {
        return (Vec::new(), replays);
    }
    let mut granularity = 2;
    while current.len() >= 2 {
        let chunks = split(current.len(), granularity);
        let mut reduced = None;
        // A chunk alone.
        for range in &chunks {
            if let Some(n) = test(&current[range.clone()]) {
                reduced = Some((current[range.clone()][..n].to_vec(), 2));
                break;
            }
        }
        // Everything but a chunk.
        if reduced.is_none() && granularity > 2 {
            for range in &chunks {
                let rest: Vec<T> = current[..range.start]
                    .iter()
                    .chain(&current[range.end..])
                    .cloned()
                    .collect();
                if let Some(n) = test(&rest) {
                    reduced = Some((rest[..n].to_vec(), (granularity - 1).max(2)));
                    break;
                }
            }
        }
        match reduced {
            Some((smaller, g)) => {
                current = smaller;
                granularity = g;
            }
            None if granularity >= current.len() => break,
            None => granularity = (granularity * 2).min(current.len()),
        }
    }
    (current, replays)
}

/// `len` split into `parts` contiguous ranges of nearly equal size.
fn split(len: usize, parts: usize) -> Vec<std::ops::Range<usize>> {
    let parts = parts.min(len).max(1);
    (0..parts)
        .map(|i| (i * len / parts)..((i + 1) * len / parts))
        .collect()
}
