//! The collapse monitor `std_of_l2_normalized` (ANCHORS.md §2.2 item 6, lightly's definition): rows of `z` `[n, f]`
//! divided by `max(‖row‖, 1e-12)` (`F.normalize`), per-column unbiased std over the batch, mean over the columns.
//! ≈ 0 when every row points the same way (collapse), ≈ 1/√f for healthy, spread-out embeddings. All in f64.

use super::Element;
use crate::backend::geom::L2NormalizedStdGeom;

/// `F.normalize`'s floor on the row norm.
pub const NORM_EPS: f64 = 1e-12;

pub fn fwd<T: Element>(g: &L2NormalizedStdGeom, z: &[T], out: &mut [T]) {
    const OP: &str = "l2_normalized_std_fwd";
    let (n, f) = (g.n, g.f);
    assert!(n >= 2, "{OP}: needs at least 2 samples, got {n}");
    assert_eq!(z.len(), n * f, "{OP}: z length for {g:?}");
    assert!(!out.is_empty(), "{OP}: out needs one element");
    let inv_norm: Vec<f64> =
        z.chunks_exact(f).map(|row| 1.0 / row.iter().map(|&v| v.to_f64() * v.to_f64()).sum::<f64>().sqrt().max(NORM_EPS)).collect();
    let mut mean = vec![0f64; f];
    for (row, &k) in z.chunks_exact(f).zip(&inv_norm) {
        mean.iter_mut().zip(row).for_each(|(m, &v)| *m += v.to_f64() * k);
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut ss = vec![0f64; f];
    for (row, &k) in z.chunks_exact(f).zip(&inv_norm) {
        for ((s, &m), &v) in ss.iter_mut().zip(&mean).zip(row) {
            let d = v.to_f64() * k - m;
            *s += d * d;
        }
    }
    let total: f64 = ss.iter().map(|&s| (s / (n - 1) as f64).sqrt()).sum();
    out[0] = T::from_f64(if f == 0 { f64::NAN } else { total / f as f64 });
}
