//! fgssl: FG-SSL (fine-grained self-supervised learning with jigsaw puzzles) on a from-scratch engine.
//!
//! Layers, top to bottom (each uses only those below it):
//! `cli` -> `model` -> `ops` -> `backend`, with `tensor`, `params`, `weights` and `imaging` as shared plumbing.

pub mod augment;
pub mod backend;
pub mod cli;
pub mod data;
pub mod error;
pub mod imaging;
pub mod metrics;
pub mod model;
pub mod ops;
pub mod params;
pub mod plot;
pub mod predictions;
pub mod rng;
pub mod selftest;
pub mod tensor;
pub mod training;
pub mod weights;

pub use error::{Error, Result};
