//! fgssl: FG-SSL (fine-grained self-supervised learning with jigsaw puzzles) on a from-scratch engine.
//!
//! Layers, top to bottom (each uses only those below it):
//! `cli` -> `model` -> `ops` -> `backend`, with `tensor`, `params`, `weights` and `image` as shared plumbing.

pub mod backend;
pub mod error;
pub mod params;
pub mod rng;
pub mod tensor;

pub use error::{Error, Result};
