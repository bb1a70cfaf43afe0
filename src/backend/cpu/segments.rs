//! Disjoint per-segment windows into the flat parameter / gradient / optimizer-state arenas, for the optimizer
//! ops (`lars_step`, `adamw_step`) that update every segment of a table in parallel.

/// Mutable windows `arena[offset..offset + len]`, one per range, in the order given. Panics when ranges overlap or
/// leave the arena (a caller bug, as in `sgd_step`).
pub fn carve<'a, T>(op: &str, ranges: &[(usize, usize)], arena: &'a mut [T]) -> Vec<&'a mut [T]> {
    let mut order: Vec<usize> = (0..ranges.len()).collect();
    order.sort_by_key(|&i| ranges[i].0);
    let total = arena.len();
    let mut out: Vec<Option<&'a mut [T]>> = (0..ranges.len()).map(|_| None).collect();
    let (mut rest, mut cursor) = (arena, 0usize);
    for i in order {
        let (offset, len) = ranges[i];
        assert!(offset >= cursor, "{op}: segment at {offset} overlaps the previous one (ends at {cursor})");
        assert!(offset + len <= total, "{op}: segment {offset}..{} is outside the arena of {total}", offset + len);
        let (seg, tail) = std::mem::take(&mut rest)[offset - cursor..].split_at_mut(len);
        out[i] = Some(seg);
        (rest, cursor) = (tail, offset + len);
    }
    out.into_iter().map(|w| w.expect("every range carved")).collect()
}
