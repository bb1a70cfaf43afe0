//! Jigsaw permutations (METHOD.md §4): one permutation of the `n x n` tiles per sample and per grid, drawn from the
//! counter-based [`Stream`] keyed by `(seed, step, sample, op)`, so a permutation depends on nothing but its key.
//!
//! Convention, shared by the CPU reference and the kernels: tiles are numbered row-major, and a permutation `perm`
//! of a sample is applied as a gather, `src_tile = perm[dst_tile]`: output tile `d` shows input tile `perm[d]`.
//! A batch of permutations is `[n_samples, grid * grid]` `u32`, sample after sample.

use std::fmt;
use std::str::FromStr;

use super::philox::Stream;
use crate::error::{Error, Result};

/// Stream op id of the jigsaw permutation of grid level `level` (0 = finest); see [`super::policy::op`].
pub const fn jigsaw_op(level: u32) -> u32 {
    0x4A00 + level
}

/// How a permutation is drawn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Jigsaw {
    /// A uniformly random permutation of the tiles (Fisher-Yates); a tile may stay in place. The default.
    #[default]
    Uniform,
    /// The reference code's loop: shuffle the list of cells, then for each cell `c` in that order swap the tile at
    /// (0, 0) with the tile at `c`. The result is a uniformly random single cycle through all `n^2` tiles (every
    /// tile moves when `n > 1`).
    SwapLoop,
}

impl Jigsaw {
    /// The permutation of a `grid x grid` puzzle drawn from `stream`.
    pub fn permutation(self, grid: usize, stream: &mut Stream) -> Vec<u32> {
        let cells = grid * grid;
        let mut perm: Vec<u32> = (0..cells as u32).collect();
        shuffle(&mut perm, stream);
        match self {
            Jigsaw::Uniform => perm,
            Jigsaw::SwapLoop => {
                // `perm` is now the shuffled list of cells; `arrangement[p]` is the tile shown at position p.
                let mut arrangement: Vec<u32> = (0..cells as u32).collect();
                for &c in &perm {
                    arrangement.swap(0, c as usize);
                }
                arrangement
            }
        }
    }
}

/// Fisher-Yates, from the back.
fn shuffle(v: &mut [u32], stream: &mut Stream) {
    for i in (1..v.len()).rev() {
        let j = stream.below(i as u32 + 1) as usize;
        v.swap(i, j);
    }
}

impl FromStr for Jigsaw {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "uniform" => Ok(Jigsaw::Uniform),
            "swap-loop" => Ok(Jigsaw::SwapLoop),
            _ => Err(Error::Invalid(format!("unknown jigsaw generator '{s}' (expected 'uniform' or 'swap-loop')"))),
        }
    }
}

impl fmt::Display for Jigsaw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Jigsaw::Uniform => "uniform",
            Jigsaw::SwapLoop => "swap-loop",
        })
    }
}

/// Permutations `[samples.len(), grid^2]` for grid level `level`: sample `i` uses the stream keyed by
/// `(seed, step, samples[i], jigsaw_op(level))`.
pub fn batch_permutations(kind: Jigsaw, grid: usize, seed: u64, step: u32, samples: &[u32], level: u32) -> Vec<u32> {
    samples.iter().flat_map(|&s| kind.permutation(grid, &mut Stream::new(seed, step, s, jigsaw_op(level)))).collect()
}

/// A clear error unless `grid` divides the image side.
pub fn check_divides(side: usize, grid: usize) -> Result<()> {
    if grid == 0 || side % grid != 0 {
        return Err(Error::Invalid(format!(
            "jigsaw: a {grid} x {grid} grid does not divide the {side} x {side} image (the side must be a multiple of the grid)"
        )));
    }
    Ok(())
}

/// Jigsaw granularities of the three hierarchical blocks, finest first (`0` feeds block 1, the shallowest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grids(pub [usize; 3]);

impl Grids {
    /// ISIC 2017 / ISIC 2018 run scripts of the reference: 16-8-4.
    pub const ISIC: Grids = Grids([16, 8, 4]);
    /// APTOS 2019 run scripts of the reference: 32-16-8.
    pub const APTOS: Grids = Grids([32, 16, 8]);

    /// The default for a data set kind: APTOS 32-16-8, everything else (ISIC and the rest) 16-8-4.
    pub fn for_dataset(kind: crate::data::DatasetKind) -> Grids {
        match kind {
            crate::data::DatasetKind::Aptos2019 => Grids::APTOS,
            _ => Grids::ISIC,
        }
    }

    /// Errors unless every grid divides the image side.
    pub fn check(&self, side: usize) -> Result<()> {
        self.0.iter().try_for_each(|&g| check_divides(side, g))
    }
}

impl FromStr for Grids {
    type Err = Error;
    /// `"16,8,4"` (spaces or dashes also separate: `"16 8 4"`, `"16-8-4"`).
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::Invalid(format!("jigsaw grids '{s}': expected three positive integers, finest first, e.g. '16,8,4'"));
        let parts: Vec<usize> =
            s.split([',', ' ', '-']).filter(|p| !p.is_empty()).map(|p| p.trim().parse::<usize>().map_err(|_| bad())).collect::<Result<_>>()?;
        match parts.as_slice() {
            &[a, b, c] if a > 0 && b > 0 && c > 0 => Ok(Grids([a, b, c])),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Grids {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{},{}", self.0[0], self.0[1], self.0[2])
    }
}

/// The inverse permutation: `inverse(p)[p[d]] = d`.
pub fn inverse(perm: &[u32]) -> Vec<u32> {
    let mut inv = vec![0; perm.len()];
    for (d, &s) in perm.iter().enumerate() {
        inv[s as usize] = d as u32;
    }
    inv
}
