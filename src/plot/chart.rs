//! Three chart kinds drawn on a [`Canvas`]: line charts (training curves), grouped bar charts (per-class recall,
//! final metrics) and a heat map with counts (confusion matrix). Each takes plain numbers and returns a canvas;
//! which numbers to plot is the caller's business.

use super::canvas::{Canvas, Rgb, BLACK, GRID, PALETTE, WHITE};
use super::font::{text_width, ADVANCE, GLYPH_H};

const WIDTH: usize = 960;
const HEIGHT: usize = 560;
/// Plot area inside the canvas: room for the title above, tick labels and axis titles left and below, the legend
/// on the right.
const LEFT: i64 = 110;
const TOP: i64 = 60;
const RIGHT: i64 = 210;
const BOTTOM: i64 = 80;
const LABEL: usize = 2;
const TITLE: usize = 3;
const TEXT_H: i64 = (GLYPH_H * LABEL) as i64;

/// A named sequence of `(x, y)` points; non-finite y values leave a gap.
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

#[derive(Clone, Debug, Default)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Fixed y range (e.g. 0..1 for accuracies); otherwise the data's range, widened to round ticks.
    pub y_range: Option<(f64, f64)>,
}

/// Bars of several groups (one colour each) over named categories; `values[g][c]`, NaN for no bar.
#[derive(Clone, Debug, Default)]
pub struct BarChart {
    pub title: String,
    pub y_label: String,
    pub categories: Vec<String>,
    pub groups: Vec<String>,
    pub values: Vec<Vec<f64>>,
    pub y_range: Option<(f64, f64)>,
}

/// A square matrix of counts, each cell shaded by its share of its row, with the count written in it.
#[derive(Clone, Debug, Default)]
pub struct Heatmap {
    pub title: String,
    pub row_label: String,
    pub col_label: String,
    pub names: Vec<String>,
    pub counts: Vec<Vec<usize>>,
}

/// Round tick values covering `[lo, hi]` (about `target` of them): steps of 1, 2 or 5 times a power of ten.
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    let (lo, hi) = widen(lo, hi);
    let raw = (hi - lo) / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let first = (lo / step).floor() as i64;
    let last = (hi / step).ceil() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// A range with some width: an empty one is widened around its value.
fn widen(lo: f64, hi: f64) -> (f64, f64) {
    if hi > lo {
        (lo, hi)
    } else {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo - pad, hi + pad)
    }
}

/// A tick label with as many decimals as the step between ticks needs.
pub fn tick_label(v: f64, step: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e5 || v.abs() < 1e-3) {
        return format!("{v:.1e}");
    }
    let decimals = (-step.abs().log10().floor()).clamp(0.0, 6.0) as usize;
    format!("{v:.decimals$}")
}

/// Shortens `s` to at most `max_chars` characters, marking the cut with a final `.`.
fn fit(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        s.to_string()
    } else {
        s.chars().take(max_chars.saturating_sub(1)).chain(['.']).collect()
    }
}

/// Maps data coordinates to pixels inside the plot area.
struct Frame {
    x: (f64, f64),
    y: (f64, f64),
    px: (i64, i64),
    py: (i64, i64),
}

impl Frame {
    fn map(&self, x: f64, y: f64) -> (i64, i64) {
        let fx = (x - self.x.0) / (self.x.1 - self.x.0);
        let fy = (y - self.y.0) / (self.y.1 - self.y.0);
        (self.px.0 + (fx * (self.px.1 - self.px.0) as f64).round() as i64, self.py.1 - (fy * (self.py.1 - self.py.0) as f64).round() as i64)
    }
}

/// Title, axis titles, y grid and tick labels; returns the canvas and the y ticks' frame limits.
fn axes(title: &str, x_label: &str, y_label: &str, y_ticks: &[f64]) -> Canvas {
    let mut c = Canvas::new(WIDTH, HEIGHT, WHITE);
    let (x0, x1, y0, y1) = (LEFT, WIDTH as i64 - RIGHT, TOP, HEIGHT as i64 - BOTTOM);
    c.text_centered((x0 + x1) / 2, 18, title, TITLE, BLACK);
    c.text_centered((x0 + x1) / 2, HEIGHT as i64 - TEXT_H - 12, x_label, LABEL, BLACK);
    c.text_vertical(14, (y0 + y1) / 2, y_label, LABEL, BLACK);
    let (lo, hi) = (y_ticks[0], y_ticks[y_ticks.len() - 1]);
    let step = if y_ticks.len() > 1 { y_ticks[1] - y_ticks[0] } else { 1.0 };
    for &t in y_ticks {
        let y = y1 - ((t - lo) / (hi - lo) * (y1 - y0) as f64).round() as i64;
        c.fill_rect(x0, y, x1 - x0, 1, GRID);
        c.text_right(x0 - 8, y - TEXT_H / 2, &tick_label(t, step), LABEL, BLACK);
    }
    c
}

fn frame_box(c: &mut Canvas) {
    let (x0, x1, y0, y1) = (LEFT, WIDTH as i64 - RIGHT, TOP, HEIGHT as i64 - BOTTOM);
    c.stroke_rect(x0, y0, x1 - x0 + 1, y1 - y0 + 1, BLACK);
}

/// The legend in the right margin: a colour swatch and a name per entry.
fn legend(c: &mut Canvas, names: &[String]) {
    let x = WIDTH as i64 - RIGHT + 16;
    let max_chars = (RIGHT as usize - 16 - 30) / (ADVANCE * LABEL);
    for (i, name) in names.iter().enumerate() {
        let y = TOP + 8 + i as i64 * (TEXT_H + 10);
        c.fill_rect(x, y + 2, 20, TEXT_H - 4, PALETTE[i % PALETTE.len()]);
        c.text(x + 28, y, &fit(name, max_chars), LABEL, BLACK);
    }
}

fn y_ticks(values: impl Iterator<Item = f64>, fixed: Option<(f64, f64)>) -> Vec<f64> {
    let (lo, hi) =
        fixed.unwrap_or_else(|| values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v))));
    if lo.is_finite() && hi.is_finite() {
        nice_ticks(lo, hi, 6)
    } else {
        nice_ticks(0.0, 1.0, 5)
    }
}

impl LineChart {
    pub fn render(&self) -> Canvas {
        let finite = || self.series.iter().flat_map(|s| s.points.iter()).filter(|p| p.0.is_finite() && p.1.is_finite());
        let yt = y_ticks(finite().map(|p| p.1), self.y_range);
        let mut c = axes(&self.title, &self.x_label, &self.y_label, &yt);
        let (xlo, xhi) = finite().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.0), b.max(p.0)));
        let xt = if xlo.is_finite() { nice_ticks(xlo, xhi, 8) } else { nice_ticks(0.0, 1.0, 5) };
        let frame =
            Frame { x: (xt[0], xt[xt.len() - 1]), y: (yt[0], yt[yt.len() - 1]), px: (LEFT, WIDTH as i64 - RIGHT), py: (TOP, HEIGHT as i64 - BOTTOM) };
        let xstep = if xt.len() > 1 { xt[1] - xt[0] } else { 1.0 };
        for &t in &xt {
            let (x, _) = frame.map(t, frame.y.0);
            c.fill_rect(x, frame.py.1, 1, 6, BLACK);
            c.text_centered(x, frame.py.1 + 10, &tick_label(t, xstep), LABEL, BLACK);
        }
        for (i, s) in self.series.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            let markers = s.points.len() <= 40;
            let mut prev: Option<(i64, i64)> = None;
            for &(x, y) in &s.points {
                if !(x.is_finite() && y.is_finite()) {
                    prev = None;
                    continue;
                }
                let p = frame.map(x, y);
                if let Some(q) = prev {
                    c.line(q, p, 2, colour);
                }
                if markers {
                    c.fill_rect(p.0 - 3, p.1 - 3, 7, 7, colour);
                }
                prev = Some(p);
            }
        }
        frame_box(&mut c);
        legend(&mut c, &self.series.iter().map(|s| s.name.clone()).collect::<Vec<_>>());
        c
    }
}

impl BarChart {
    pub fn render(&self) -> Canvas {
        let yt = y_ticks(self.values.iter().flatten().copied(), self.y_range);
        let mut c = axes(&self.title, "", &self.y_label, &yt);
        let (x0, x1, y0, y1) = (LEFT, WIDTH as i64 - RIGHT, TOP, HEIGHT as i64 - BOTTOM);
        let frame = Frame { x: (0.0, 1.0), y: (yt[0], yt[yt.len() - 1]), px: (x0, x1), py: (y0, y1) };
        let n = self.categories.len().max(1) as i64;
        let slot = (x1 - x0) / n;
        let groups = self.groups.len().max(1) as i64;
        let bar = ((slot - 16) / groups).max(2);
        let label_chars = (slot as usize).saturating_sub(4) / (ADVANCE * LABEL);
        for (ci, name) in self.categories.iter().enumerate() {
            let sx = x0 + ci as i64 * slot;
            c.text_centered(sx + slot / 2, y1 + 10, &fit(name, label_chars.max(1)), LABEL, BLACK);
            for (g, values) in self.values.iter().enumerate() {
                let v = values.get(ci).copied().unwrap_or(f64::NAN);
                if !v.is_finite() {
                    continue;
                }
                let (_, top) = frame.map(0.0, v.clamp(frame.y.0, frame.y.1));
                let (_, base) = frame.map(0.0, frame.y.0.max(0.0).min(frame.y.1));
                let bx = sx + 8 + g as i64 * bar;
                c.fill_rect(bx, top.min(base), bar - 2, (base - top).abs().max(1), PALETTE[g % PALETTE.len()]);
                let value = format!("{v:.2}");
                if text_width(&value, 1) as i64 <= bar {
                    c.text_centered(bx + bar / 2 - 1, top.min(base) - 10, &value, 1, BLACK);
                }
            }
        }
        frame_box(&mut c);
        legend(&mut c, &self.groups);
        c
    }
}

impl Heatmap {
    pub fn render(&self) -> Canvas {
        let k = self.counts.len().max(1);
        let cell = (440 / k).clamp(8, 120) as i64;
        let (left, top) = (190i64, 70i64);
        let side = cell * k as i64;
        let mut c = Canvas::new((left + side + 40) as usize, (top + side + 190) as usize, WHITE);
        c.text_centered(c.width as i64 / 2, 18, &self.title, TITLE, BLACK);
        let name_chars = (left as usize - 40) / (ADVANCE * LABEL);
        for (r, row) in self.counts.iter().enumerate() {
            let total: usize = row.iter().sum();
            let y = top + r as i64 * cell;
            c.text_right(left - 8, y + cell / 2 - TEXT_H / 2, &fit(self.names.get(r).map_or("", |s| s), name_chars), LABEL, BLACK);
            for (col, &n) in row.iter().enumerate() {
                let share = if total > 0 { n as f64 / total as f64 } else { 0.0 };
                // White (none of the row) to dark blue (all of it).
                let shade = |full: u8| (255.0 - share * (255.0 - full as f64)).round() as u8;
                let colour: Rgb = [shade(8), shade(48), shade(107)];
                let x = left + col as i64 * cell;
                c.fill_rect(x, y, cell, cell, colour);
                let ink = if share > 0.5 { WHITE } else { BLACK };
                let scale = if text_width(&n.to_string(), LABEL) as i64 <= cell - 4 { LABEL } else { 1 };
                c.text_centered(x + cell / 2, y + cell / 2 - (GLYPH_H * scale) as i64 / 2, &n.to_string(), scale, ink);
            }
        }
        for (col, name) in self.names.iter().enumerate().take(k) {
            let x = left + col as i64 * cell + cell / 2 - TEXT_H / 2;
            let label = fit(name, 10);
            // Read bottom to top, starting just below the matrix.
            c.text_vertical(x, top + side + 8 + text_width(&label, LABEL) as i64 / 2, &label, LABEL, BLACK);
        }
        c.stroke_rect(left, top, side + 1, side + 1, BLACK);
        c.text_vertical(12, top + side / 2, &self.row_label, LABEL, BLACK);
        c.text_centered(left + side / 2, top + side + 8 + 10 * (ADVANCE * LABEL) as i64 + 16, &self.col_label, LABEL, BLACK);
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(nice_ticks(0.0, 1.0, 5), vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]);
        let t = nice_ticks(23.7, 81.2, 6);
        assert!(t[0] <= 23.7 && *t.last().unwrap() >= 81.2, "{t:?}");
        assert_eq!(t[1] - t[0], 10.0);
        let flat = nice_ticks(2.0, 2.0, 6);
        assert!(flat[0] < 2.0 && *flat.last().unwrap() > 2.0, "{flat:?}");
        assert_eq!(tick_label(0.4, 0.2), "0.4");
        assert_eq!(tick_label(40.0, 10.0), "40");
        assert_eq!(tick_label(0.0, 0.005), "0.000");
    }

    fn plot_area() -> (i64, i64, i64, i64) {
        (LEFT, WIDTH as i64 - RIGHT, TOP, HEIGHT as i64 - BOTTOM)
    }

    #[test]
    fn a_line_chart_png_decodes_with_its_curve_and_labels_where_expected() {
        let chart = LineChart {
            title: "Loss".into(),
            x_label: "iteration".into(),
            y_label: "loss".into(),
            series: vec![Series { name: "step 1".into(), points: vec![(0.0, 0.0), (10.0, 10.0)] }],
            y_range: None,
        };
        let path = std::env::temp_dir().join(format!("fgssl-chart-{}.png", std::process::id()));
        chart.render().save_png(&path).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(img.dimensions(), (WIDTH as u32, HEIGHT as u32));
        let px = |x: i64, y: i64| img.get_pixel(x as u32, y as u32).0;
        // The ticks are 0..10 on both axes, so the curve is the plot area's diagonal: its middle is the series colour.
        let (x0, x1, y0, y1) = plot_area();
        assert_eq!(px((x0 + x1) / 2, (y0 + y1) / 2), PALETTE[0]);
        assert_eq!(px(x0 + (x1 - x0) / 4, y1 - (y1 - y0) / 4), PALETTE[0]);
        // Far from the diagonal, inside the plot area: background or grid, not ink.
        let off = px(x0 + (x1 - x0) / 4 + 7, y0 + (y1 - y0) / 4 + 3);
        assert!(off == WHITE || off == GRID, "{off:?}");
        // The title is inked in black above the plot area, centred; the legend swatch has the series colour.
        let title_ink = (0..TOP as u32).flat_map(|y| (0..WIDTH as u32).map(move |x| (x, y))).filter(|&(x, y)| img.get_pixel(x, y).0 == BLACK).count();
        assert!(title_ink > 50, "{title_ink} black pixels in the title band");
        assert_eq!(px(WIDTH as i64 - RIGHT + 26, TOP + 8 + TEXT_H / 2), PALETTE[0]);
        // Tick labels below the axis: black pixels between the axis and the x-axis title.
        let tick_ink = (y1 as u32 + 10..y1 as u32 + 10 + TEXT_H as u32)
            .flat_map(|y| (0..WIDTH as u32).map(move |x| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0 == BLACK)
            .count();
        assert!(tick_ink > 50, "{tick_ink}");
    }

    #[test]
    fn bars_and_heatmap_cells_have_their_heights_and_shades() {
        let bars = BarChart {
            title: "Recall".into(),
            y_label: "recall".into(),
            categories: vec!["a".into(), "b".into()],
            groups: vec!["test".into()],
            values: vec![vec![1.0, 0.0]],
            y_range: Some((0.0, 1.0)),
        };
        let c = bars.render();
        let (x0, x1, y0, y1) = plot_area();
        let slot = (x1 - x0) / 2;
        // A full bar reaches the top of the plot area in the first slot; the second slot's bar is empty.
        assert_eq!(c.get((x0 + 12) as usize, (y0 + 2) as usize), PALETTE[0]);
        assert_eq!(c.get((x0 + 12) as usize, (y1 - 2) as usize), PALETTE[0]);
        assert_ne!(c.get((x0 + slot + 12) as usize, ((y0 + y1) / 2) as usize), PALETTE[0]);

        let map = Heatmap {
            title: "CM".into(),
            row_label: "true".into(),
            col_label: "pred".into(),
            names: vec!["a".into(), "b".into()],
            counts: vec![vec![4, 0], vec![1, 1]],
        };
        let c = map.render();
        let cell = 220;
        let (left, top) = (190, 70);
        // Row 0 is all in column 0 (darkest), row 1 half and half.
        assert_eq!(c.get(left + 3, top + 3), [8, 48, 107]);
        assert_eq!(c.get(left + cell + 3, top + 3), WHITE);
        let half = c.get(left + 3, top + cell + 3);
        assert_eq!(half, c.get(left + cell + 3, top + cell + 3));
        assert!(half[0] < 255 && half[0] > 8, "{half:?}");
    }

    #[test]
    fn fit_cuts_long_names() {
        assert_eq!(fit("reticular", 20), "reticular");
        assert_eq!(fit("homogeneous", 6), "homog.");
    }
}
