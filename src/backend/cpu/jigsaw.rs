//! Jigsaw gather on f32 activations (`jigsaw_fwd`): `y[n, c, tile d] = x[n, c, tile perm_n[d]]`, tiles numbered
//! row-major on a `grid x grid` grid. A pure permutation of elements, so it is exact, and it has no backward
//! (its inputs are data).

use rayon::prelude::*;

use super::Element;
use crate::backend::geom::JigsawGeom;

/// The gather on one `[c, h, w]` image: `y[i] = x(j)`, `j` the flat index in the source image that output `i` shows.
pub(crate) fn gather_image<T>(x: impl Fn(usize) -> T, y: &mut [T], c: usize, h: usize, w: usize, grid: usize, perm: &[u32]) {
    let (th, tw) = (h / grid, w / grid);
    for ch in 0..c {
        for oy in 0..h {
            let tile_row = (oy / th) * grid;
            for ox in 0..w {
                let src = perm[tile_row + ox / tw] as usize;
                let (sy, sx) = ((src / grid) * th + oy % th, (src % grid) * tw + ox % tw);
                y[(ch * h + oy) * w + ox] = x((ch * h + sy) * w + sx);
            }
        }
    }
}

fn check(g: &JigsawGeom, x_len: usize, y_len: usize, perms: &[u32]) {
    let len = g.n * g.c * g.h * g.w;
    assert!(g.grid > 0 && g.h % g.grid == 0 && g.w % g.grid == 0, "jigsaw_fwd: grid {} does not divide {} x {}", g.grid, g.h, g.w);
    assert_eq!(x_len, len, "jigsaw_fwd: x length for {g:?}");
    assert_eq!(y_len, len, "jigsaw_fwd: y length for {g:?}");
    let cells = g.grid * g.grid;
    assert_eq!(perms.len(), g.n * cells, "jigsaw_fwd: permutation table length for {g:?}");
    assert!(perms.iter().all(|&t| (t as usize) < cells), "jigsaw_fwd: a tile index is not below {cells}");
}

pub fn fwd<T: Element>(g: &JigsawGeom, perms: &[u32], x: &[T], y: &mut [T]) {
    check(g, x.len(), y.len(), perms);
    let img = g.c * g.h * g.w;
    if img == 0 {
        return;
    }
    let cells = g.grid * g.grid;
    y.par_chunks_mut(img).zip(x.par_chunks(img)).enumerate().for_each(|(i, (y, x))| {
        gather_image(|j| x[j], y, g.c, g.h, g.w, g.grid, &perms[i * cells..][..cells]);
    });
}
