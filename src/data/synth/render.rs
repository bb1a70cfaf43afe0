//! The image generator: one synthetic dermoscopy-like "lesion" per call, from two keys.
//!
//! The *nuisance* key draws everything that does not depend on the class: skin colour, an illumination gradient
//! and vignette, the lesion's irregular outline (an ellipse with a Fourier-perturbed boundary), its size and
//! position, its brown base colour and a slow shading across it, how strongly and over what fraction of the
//! lesion the pigment pattern darkens it, global brightness and contrast, hair-like strokes and pixel noise.
//! The *texture* key draws the class pattern: a raw pattern field at a scale of a few pixels inside the lesion.
//!
//! The raw field never reaches the pixels directly. Its values inside the lesion are replaced, by rank, with the
//! quantiles of one fixed pigment distribution ([`pigment_quantile`], shared by every class), so within an image
//! the *set* of pigment values is the same whatever the class and only their spatial arrangement differs. The
//! pigment then darkens the lesion's base colour multiplicatively. Colour histograms and colour moments therefore
//! carry no class information beyond sampling noise; a model has to look at local structure.

use image::RgbImage;

use crate::rng::Rng;

/// How each class arranges pigment. Index = class id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Texture {
    /// Pigment network: a fine honeycomb of dark lines (Voronoi cell borders, cells 4.5-6 px).
    Reticular,
    /// Dots and globules: small round dots (radius 0.9-1.6 px) on a jittered grid.
    Globular,
    /// Streaks: short radial line segments in the outer part of the lesion.
    Streaks,
    /// Structureless: pigment varies only smoothly (blotches 7-10 px across), no fine structure.
    Homogeneous,
    /// Parallel ridges: evenly spaced, slightly wavy parallel lines (spacing 4-5.5 px).
    Parallel,
    /// Granularity (peppering): dense tiny specks (radius 0.5-0.8 px).
    Granular,
}

impl Texture {
    pub const ALL: [Texture; 6] =
        [Texture::Reticular, Texture::Globular, Texture::Streaks, Texture::Homogeneous, Texture::Parallel, Texture::Granular];

    pub fn name(self) -> &'static str {
        match self {
            Texture::Reticular => "reticular",
            Texture::Globular => "globular",
            Texture::Streaks => "streaks",
            Texture::Homogeneous => "homogeneous",
            Texture::Parallel => "parallel",
            Texture::Granular => "granular",
        }
    }
}

/// A single-channel field over the image, row-major.
struct Field {
    w: usize,
    h: usize,
    v: Vec<f32>,
}

impl Field {
    fn new(w: usize, h: usize) -> Self {
        Field { w, h, v: vec![0.0; w * h] }
    }

    /// Sets each pixel within `radius + 1` of the segment `a..b` to the max of its value and a soft stroke of
    /// half-width `radius` (anti-aliased over about one pixel), scaled by `value`.
    fn stroke_max(&mut self, a: (f32, f32), b: (f32, f32), radius: f32, value: f32) {
        let reach = radius + 1.0;
        let x0 = (a.0.min(b.0) - reach).floor().max(0.0) as usize;
        let y0 = (a.1.min(b.1) - reach).floor().max(0.0) as usize;
        let x1 = ((a.0.max(b.0) + reach).ceil().max(0.0) as usize).min(self.w);
        let y1 = ((a.1.max(b.1) + reach).ceil().max(0.0) as usize).min(self.h);
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len2 = dx * dx + dy * dy;
        for y in y0..y1 {
            for x in x0..x1 {
                let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
                let t = if len2 > 0.0 { (((px - a.0) * dx + (py - a.1) * dy) / len2).clamp(0.0, 1.0) } else { 0.0 };
                let (qx, qy) = (a.0 + t * dx - px, a.1 + t * dy - py);
                let d = (qx * qx + qy * qy).sqrt();
                let cover = (radius + 0.5 - d).clamp(0.0, 1.0);
                let v = &mut self.v[y * self.w + x];
                *v = v.max(cover * value);
            }
        }
    }
}

/// Smooth random values on a square lattice of spacing `cell` px, interpolated with smoothstep weights; in [0, 1].
struct ValueNoise {
    cell: f32,
    gw: usize,
    grid: Vec<f32>,
}

impl ValueNoise {
    fn new(rng: &mut Rng, size: usize, cell: f32) -> Self {
        let gw = (size as f32 / cell).ceil() as usize + 2;
        ValueNoise { cell, gw, grid: (0..gw * gw).map(|_| rng.uniform() as f32).collect() }
    }

    fn at(&self, x: f32, y: f32) -> f32 {
        let (fx, fy) = ((x / self.cell).max(0.0), (y / self.cell).max(0.0));
        let (ix, iy) = ((fx as usize).min(self.gw - 2), (fy as usize).min(self.gw - 2));
        let s = |t: f32| t * t * (3.0 - 2.0 * t);
        let (tx, ty) = (s((fx - ix as f32).min(1.0)), s((fy - iy as f32).min(1.0)));
        let g = |i: usize, j: usize| self.grid[j * self.gw + i];
        let top = g(ix, iy) * (1.0 - tx) + g(ix + 1, iy) * tx;
        let bottom = g(ix, iy + 1) * (1.0 - tx) + g(ix + 1, iy + 1) * tx;
        top * (1.0 - ty) + bottom * ty
    }
}

/// The lesion outline: an ellipse whose radius is perturbed by a few low Fourier harmonics.
struct Outline {
    cx: f32,
    cy: f32,
    /// Rotation of the ellipse (cos, sin).
    rot: (f32, f32),
    aspect: f32,
    r0: f32,
    /// (amplitude, phase) of harmonics 2..=5.
    harmonics: [(f32, f32); 4],
}

impl Outline {
    fn draw(rng: &mut Rng, size: f32) -> Self {
        let angle = rng.uniform_in(0.0, std::f32::consts::TAU);
        let mut harmonics = [(0.0, 0.0); 4];
        for (k, h) in harmonics.iter_mut().enumerate() {
            *h = (rng.uniform_in(0.0, 0.18) / (k as f32 + 2.0), rng.uniform_in(0.0, std::f32::consts::TAU));
        }
        Outline {
            cx: size * (0.5 + rng.uniform_in(-0.08, 0.08)),
            cy: size * (0.5 + rng.uniform_in(-0.08, 0.08)),
            rot: (angle.cos(), angle.sin()),
            aspect: rng.uniform_in(0.7, 1.0),
            r0: size * rng.uniform_in(0.28, 0.38),
            harmonics,
        }
    }

    /// (distance outside the boundary in px (negative inside), radius relative to the boundary: 0 centre, 1 edge).
    fn locate(&self, px: f32, py: f32) -> (f32, f32) {
        let (dx, dy) = (px - self.cx, py - self.cy);
        let u = dx * self.rot.0 + dy * self.rot.1;
        let v = (-dx * self.rot.1 + dy * self.rot.0) / self.aspect;
        let rho = (u * u + v * v).sqrt();
        let theta = v.atan2(u);
        let wobble: f32 = self.harmonics.iter().enumerate().map(|(k, &(a, p))| a * ((k as f32 + 2.0) * theta + p).cos()).sum();
        let boundary = self.r0 * (1.0 + wobble);
        // The ellipse's minor axis shrinks distances along v; scale the radial gap back to image pixels roughly.
        let scale = (u * u + (v * self.aspect).powi(2)).sqrt() / rho.max(1e-6);
        ((rho - boundary) * scale, rho / boundary)
    }
}

/// Everything about an image that does not depend on its class.
struct Nuisance {
    skin: [f32; 3],
    /// Illumination: gradient direction (cos, sin), gradient strength, vignette strength.
    light_dir: (f32, f32),
    light_grad: f32,
    vignette: f32,
    outline: Outline,
    edge_softness: f32,
    lesion_colour: [f32; 3],
    shading: ValueNoise,
    shading_amp: f32,
    /// How much fully pigmented pixels darken the lesion colour.
    pigment_strength: f32,
    /// Fraction of the lesion that is pigmented (dark quantiles of the pigment distribution).
    coverage: f32,
    brightness: f32,
    contrast: f32,
    hairs: Vec<Hair>,
    noise_sigma: f32,
    noise_key: u64,
}

struct Hair {
    points: Vec<(f32, f32)>,
    radius: f32,
    darkness: f32,
    colour: [f32; 3],
}

impl Nuisance {
    fn draw(rng: &mut Rng, size: usize) -> Self {
        let sz = size as f32;
        let s = sz / 64.0;
        let tone = rng.uniform_in(-1.0, 1.0);
        let skin = [
            0.86 + 0.07 * tone + rng.uniform_in(-0.03, 0.03),
            0.68 + 0.10 * tone + rng.uniform_in(-0.03, 0.03),
            0.58 + 0.11 * tone + rng.uniform_in(-0.03, 0.03),
        ];
        let light_angle = rng.uniform_in(0.0, std::f32::consts::TAU);
        let light_grad = rng.uniform_in(0.0, 0.3);
        let vignette = rng.uniform_in(0.0, 0.35);
        let outline = Outline::draw(rng, sz);
        let edge_softness = rng.uniform_in(0.6, 2.0) * s;
        let f = rng.uniform_in(0.6, 1.15);
        let lesion_colour =
            [(0.52 + rng.uniform_in(-0.04, 0.04)) * f, (0.34 + rng.uniform_in(-0.04, 0.04)) * f, (0.24 + rng.uniform_in(-0.04, 0.04)) * f];
        let shading_cell = rng.uniform_in(14.0, 20.0) * s;
        let shading = ValueNoise::new(rng, size, shading_cell);
        let shading_amp = rng.uniform_in(0.0, 0.35);
        let pigment_strength = rng.uniform_in(0.45, 0.7);
        let coverage = rng.uniform_in(0.18, 0.3);
        let brightness = rng.uniform_in(0.85, 1.15);
        let contrast = rng.uniform_in(0.8, 1.2);
        let n_hairs = [0, 0, 1, 1, 2, 2, 3, 4][rng.below(8)];
        let hairs = (0..n_hairs).map(|_| Hair::draw(rng, sz)).collect();
        let noise_sigma = rng.uniform_in(0.005, 0.03);
        let noise_key = rng.next_u64();
        Nuisance {
            skin,
            light_dir: (light_angle.cos(), light_angle.sin()),
            light_grad,
            vignette,
            outline,
            edge_softness,
            lesion_colour,
            shading,
            shading_amp,
            pigment_strength,
            coverage,
            brightness,
            contrast,
            hairs,
            noise_sigma,
            noise_key,
        }
    }
}

impl Hair {
    /// A gently curved stroke (quadratic Bézier) crossing part of the image.
    fn draw(rng: &mut Rng, size: f32) -> Self {
        let s = size / 64.0;
        let start = (rng.uniform_in(-0.1, 1.1) * size, rng.uniform_in(-0.1, 1.1) * size);
        let angle = rng.uniform_in(0.0, std::f32::consts::TAU);
        let len = rng.uniform_in(0.4, 1.2) * size;
        let end = (start.0 + len * angle.cos(), start.1 + len * angle.sin());
        let bend = rng.uniform_in(-0.25, 0.25) * len;
        let mid = ((start.0 + end.0) / 2.0 - bend * angle.sin(), (start.1 + end.1) / 2.0 + bend * angle.cos());
        let points = (0..=24)
            .map(|i| {
                let t = i as f32 / 24.0;
                let a = (1.0 - t) * (1.0 - t);
                let b = 2.0 * t * (1.0 - t);
                let c = t * t;
                (a * start.0 + b * mid.0 + c * end.0, a * start.1 + b * mid.1 + c * end.1)
            })
            .collect();
        let g = rng.uniform_in(0.5, 1.3);
        Hair { points, radius: rng.uniform_in(0.3, 0.7) * s, darkness: rng.uniform_in(0.5, 0.9), colour: [0.20 * g, 0.14 * g, 0.11 * g] }
    }
}

/// The pigment value at rank fraction `u` in [0, 1): the shared pigment distribution. A fraction `1 - coverage`
/// of the lesion stays almost unpigmented (0 to 0.12, a faint granular variation), the rest ramps quickly up to
/// full pigment 1.
pub fn pigment_quantile(u: f32, coverage: f32) -> f32 {
    let light = 1.0 - coverage;
    if u < light {
        0.12 * u / light
    } else {
        let q = ((u - light) / coverage).clamp(0.0, 1.0);
        0.12 + 0.88 * (1.0 - (1.0 - q) * (1.0 - q))
    }
}

/// The class's raw pattern field: high where the pattern puts pigment. Lengths scale with `size / 64`.
fn texture_field(texture: Texture, rng: &mut Rng, size: usize, outline: &Outline) -> Field {
    let sz = size as f32;
    let s = sz / 64.0;
    let mut f = Field::new(size, size);
    match texture {
        Texture::Reticular => {
            // Borders of Voronoi cells around jittered lattice points, in a rotated frame.
            let cell = rng.uniform_in(4.5, 6.0) * s;
            let angle = rng.uniform_in(0.0, std::f32::consts::TAU);
            let (c, sn) = (angle.cos(), angle.sin());
            let half_width = rng.uniform_in(0.55, 0.8) * s;
            let n = (sz * 1.5 / cell).ceil() as usize + 6;
            let jitter: Vec<(f32, f32)> = (0..n * n).map(|_| (rng.uniform_in(-0.4, 0.4), rng.uniform_in(-0.4, 0.4))).collect();
            let origin = n as f32 / 2.0;
            for y in 0..size {
                for x in 0..size {
                    let (px, py) = (x as f32 + 0.5 - sz / 2.0, y as f32 + 0.5 - sz / 2.0);
                    // Lattice coordinates.
                    let (gx, gy) = ((px * c + py * sn) / cell + origin, (-px * sn + py * c) / cell + origin);
                    let (ix, iy) = (gx.floor() as isize, gy.floor() as isize);
                    let mut best = [(f32::MAX, 0.0f32, 0.0f32); 2];
                    for j in iy - 2..=iy + 2 {
                        for i in ix - 2..=ix + 2 {
                            if i < 0 || j < 0 || i as usize >= n || j as usize >= n {
                                continue;
                            }
                            let (jx, jy) = jitter[j as usize * n + i as usize];
                            let (sx, sy) = (i as f32 + 0.5 + jx, j as f32 + 0.5 + jy);
                            let d2 = (sx - gx).powi(2) + (sy - gy).powi(2);
                            if d2 < best[0].0 {
                                best[1] = best[0];
                                best[0] = (d2, sx, sy);
                            } else if d2 < best[1].0 {
                                best[1] = (d2, sx, sy);
                            }
                        }
                    }
                    // Distance to the bisector of the two nearest seeds, in lattice units, then pixels.
                    let sep = ((best[1].1 - best[0].1).powi(2) + (best[1].2 - best[0].2).powi(2)).sqrt().max(1e-6);
                    let edge = (best[1].0 - best[0].0) / (2.0 * sep) * cell;
                    f.v[y * size + x] = (-(edge / half_width).powi(2)).exp();
                }
            }
        }
        Texture::Globular => {
            let spacing = rng.uniform_in(4.5, 6.0) * s;
            let n = (sz / spacing).ceil() as usize + 1;
            for j in 0..n {
                for i in 0..n {
                    let keep = rng.uniform() < 0.85;
                    let (jx, jy) = (rng.uniform_in(-0.3, 0.3), rng.uniform_in(-0.3, 0.3));
                    let r = rng.uniform_in(0.9, 1.6) * s;
                    if keep {
                        let p = ((i as f32 + 0.5 + jx) * spacing, (j as f32 + 0.5 + jy) * spacing);
                        f.stroke_max(p, p, r, 1.0);
                    }
                }
            }
        }
        Texture::Streaks => {
            // Short segments pointing away from the lesion centre, in the outer 50% of its radius.
            let spacing = 3.5 * s;
            let n = (sz / spacing).ceil() as usize;
            for j in 0..n {
                for i in 0..n {
                    let keep = rng.uniform() < 0.75;
                    let (jx, jy) = (rng.uniform_in(-0.5, 0.5), rng.uniform_in(-0.5, 0.5));
                    let len = rng.uniform_in(3.5, 7.0) * s;
                    let r = rng.uniform_in(0.45, 0.7) * s;
                    let p = ((i as f32 + 0.5 + jx) * spacing, (j as f32 + 0.5 + jy) * spacing);
                    let (_, rel) = outline.locate(p.0, p.1);
                    if !keep || !(0.5..=1.0).contains(&rel) {
                        continue;
                    }
                    let (dx, dy) = (p.0 - outline.cx, p.1 - outline.cy);
                    let norm = (dx * dx + dy * dy).sqrt().max(1e-6);
                    let (ux, uy) = (dx / norm * len / 2.0, dy / norm * len / 2.0);
                    f.stroke_max((p.0 - ux, p.1 - uy), (p.0 + ux, p.1 + uy), r, 1.0);
                }
            }
        }
        Texture::Homogeneous => {
            let cell = rng.uniform_in(7.0, 10.0) * s;
            let noise = ValueNoise::new(rng, size, cell);
            for y in 0..size {
                for x in 0..size {
                    f.v[y * size + x] = noise.at(x as f32 + 0.5, y as f32 + 0.5);
                }
            }
        }
        Texture::Parallel => {
            let spacing = rng.uniform_in(4.0, 5.5) * s;
            let angle = rng.uniform_in(0.0, std::f32::consts::PI);
            let (c, sn) = (angle.cos(), angle.sin());
            let phase = rng.uniform_in(0.0, spacing);
            let (wave_amp, wave_len) = (rng.uniform_in(0.3, 1.0) * s, rng.uniform_in(12.0, 24.0) * s);
            let half_width = rng.uniform_in(0.6, 0.85) * s;
            for y in 0..size {
                for x in 0..size {
                    let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
                    let along = px * sn - py * c;
                    let across = px * c + py * sn + phase + wave_amp * (std::f32::consts::TAU * along / wave_len).sin();
                    let d = (across.rem_euclid(spacing) - spacing / 2.0).abs();
                    f.v[y * size + x] = (-(d / half_width).powi(2)).exp();
                }
            }
        }
        Texture::Granular => {
            let spacing = 2.8 * s;
            let n = (sz / spacing).ceil() as usize + 1;
            for j in 0..n {
                for i in 0..n {
                    let keep = rng.uniform() < 0.55;
                    let (jx, jy) = (rng.uniform_in(-0.4, 0.4), rng.uniform_in(-0.4, 0.4));
                    let r = rng.uniform_in(0.5, 0.8) * s;
                    if keep {
                        let p = ((i as f32 + 0.5 + jx) * spacing, (j as f32 + 0.5 + jy) * spacing);
                        f.stroke_max(p, p, r, 1.0);
                    }
                }
            }
        }
    }
    f
}

/// Replaces the raw field's values at the pixels where `weight > 0.05` by the shared pigment quantiles, by rank
/// (ties broken by a keyed random order), and zeroes it elsewhere.
fn match_pigment(raw: &Field, weight: &[f32], coverage: f32, tie_key: u64) -> Vec<f32> {
    let mut idx: Vec<(f32, u64, u32)> = raw
        .v
        .iter()
        .zip(weight)
        .enumerate()
        .filter(|(_, (_, &w))| w > 0.05)
        .map(|(i, (&v, _))| (v, crate::rng::counter_u64(tie_key, i as u64), i as u32))
        .collect();
    idx.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut out = vec![0.0; raw.v.len()];
    let n = idx.len() as f32;
    for (rank, &(_, _, i)) in idx.iter().enumerate() {
        out[i as usize] = pigment_quantile((rank as f32 + 0.5) / n, coverage);
    }
    out
}

/// Renders one `size x size` image of `texture` with all nuisance drawn from `nuisance_key` and the pattern from
/// `texture_key`. The same nuisance key gives the same skin, lesion, lighting and hairs whatever the texture.
pub fn render_keyed(nuisance_key: u64, texture_key: u64, texture: Texture, size: usize) -> RgbImage {
    let mut rng = Rng::new(nuisance_key);
    let nu = Nuisance::draw(&mut rng, size);
    let sz = size as f32;
    let mut tex_rng = Rng::new(texture_key);
    let raw = texture_field(texture, &mut tex_rng, size, &nu.outline);
    let tie_key = tex_rng.next_u64();

    // Lesion mask (soft edge) at every pixel.
    let mask: Vec<f32> = (0..size * size)
        .map(|i| {
            let (px, py) = ((i % size) as f32 + 0.5, (i / size) as f32 + 0.5);
            let (dist, _) = nu.outline.locate(px, py);
            1.0 / (1.0 + (dist / nu.edge_softness).exp())
        })
        .collect();
    let pigment = match_pigment(&raw, &mask, nu.coverage, tie_key);

    // Hair coverage.
    let mut hair = Field::new(size, size);
    let mut hair_colour = vec![[0.0f32; 3]; size * size];
    for h in &nu.hairs {
        let mut one = Field::new(size, size);
        for seg in h.points.windows(2) {
            one.stroke_max(seg[0], seg[1], h.radius, h.darkness);
        }
        for (i, &a) in one.v.iter().enumerate() {
            if a > hair.v[i] {
                hair.v[i] = a;
                hair_colour[i] = h.colour;
            }
        }
    }

    let mut noise = Rng::new(nu.noise_key);
    let mut img = RgbImage::new(size as u32, size as u32);
    for (i, px) in img.pixels_mut().enumerate() {
        let (x, y) = ((i % size) as f32 + 0.5, (i / size) as f32 + 0.5);
        let (nx, ny) = (x / sz - 0.5, y / sz - 0.5);
        let illum = 1.0 + nu.light_grad * (nx * nu.light_dir.0 + ny * nu.light_dir.1) - nu.vignette * (nx * nx + ny * ny);
        let shade = 1.0 + nu.shading_amp * (nu.shading.at(x, y) - 0.5);
        let darken = 1.0 - nu.pigment_strength * pigment[i];
        let m = mask[i];
        let h = hair.v[i];
        for (c, out) in px.0.iter_mut().enumerate() {
            let lesion = nu.lesion_colour[c] * shade * darken;
            let mut v = (nu.skin[c] * (1.0 - m) + lesion * m) * illum;
            v = v * (1.0 - h) + hair_colour[i][c] * h;
            v = ((v - 0.5) * nu.contrast + 0.5) * nu.brightness;
            v += nu.noise_sigma * noise.normal();
            *out = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        }
    }
    img
}

/// The (nuisance, texture) keys of image `index` of class `class` under `seed`: independent streams per image,
/// so images can be rendered in any order and in parallel.
pub fn image_keys(seed: u64, class: usize, index: usize) -> (u64, u64) {
    use crate::rng::counter_u64;
    let base = counter_u64(counter_u64(seed ^ 0x5EED_5EED_5EED_5EED, class as u64), index as u64);
    (counter_u64(base, 0), counter_u64(base, 1))
}

/// Image `index` of class `class` of the data set generated with `seed`.
pub fn render(seed: u64, class: usize, index: usize, size: usize) -> RgbImage {
    let (nuisance_key, texture_key) = image_keys(seed, class, index);
    render_keyed(nuisance_key, texture_key, Texture::ALL[class], size)
}
