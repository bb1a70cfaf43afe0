//! PNG charts of a training run, drawn without a plotting library: a small RGB rasteriser ([`canvas`]) with an
//! embedded 5x7 bitmap font ([`font`]), three chart kinds ([`chart`]) and PNG output through the `image` crate.
//! Outside the engine core: nothing here knows about tensors or training; `cli::plots` feeds it a run's metrics.

pub mod canvas;
pub mod chart;
pub mod font;

pub use canvas::Canvas;
pub use chart::{BarChart, Heatmap, LineChart, Series};
