//! Host-side checks of the implicit-GEMM convolution (`kernels/conv2d.cu`, plan in
//! `backend::cuda::launch::conv2d_gemm`), no GPU needed:
//! - `FastDiv` equals integer division over the divisors and dividends the kernels use;
//! - the plan for every ResNet-18/50 and FG-SSL head shape: grid covers M and N, splits cover K exactly with no
//!   empty split, the workspace size matches;
//! - an emulation of the kernel (the same per-thread index math, load mapping, double-buffered K loop and epilogue,
//!   transliterated from conv2d.cu with `ConvGemm` / `FastDiv`) reproduces a direct f64 convolution for every pass,
//!   every tile and several split counts on odd shapes. This is what catches indexing bugs without a GPU.

use fgssl::backend::cuda::launch::conv2d_gemm::{gemm_mnk, plan, plan_with, ConvGemm, FastDiv, Pass, Plan, MAX_SPLITS, TILES};
use fgssl::backend::geom::Conv2dGeom;
use fgssl::rng::Rng;

// ---- FastDiv ----------------------------------------------------------------------------------------------------

#[test]
fn fast_div_matches_integer_division() {
    let mut rng = Rng::new(7);
    let mut divisors: Vec<u32> = (1..=4100).collect();
    divisors.extend([7 * 7, 14 * 14, 56 * 56, 112 * 112, 224 * 224, 65535, 65536, 1 << 20, (1 << 30) - 1, 1 << 30, i32::MAX as u32]);
    for _ in 0..2000 {
        divisors.push(1 + (rng.next_u64() % (i32::MAX as u64)) as u32);
    }
    for &d in &divisors {
        let f = FastDiv::new(d);
        let mut xs: Vec<u32> = vec![0, 1, d - 1, d, d.saturating_add(1), i32::MAX as u32, i32::MAX as u32 - 1, (1 << 30) + 5];
        xs.extend((0..64).map(|_| (rng.next_u64() % (1u64 << 31)) as u32));
        xs.extend((1..8u64).filter_map(|q| u32::try_from(q * d as u64).ok()).filter(|&v| v <= i32::MAX as u32).flat_map(|v| [v - 1, v]));
        for x in xs.into_iter().filter(|&x| x <= i32::MAX as u32) {
            assert_eq!(f.divmod(x), (x / d, x % d), "FastDiv {f:?}: {x} / {d}");
        }
    }
}

// ---- plans at the real shapes ------------------------------------------------------------------------------------

/// (c_in, h, c_out, k, stride, pad) of every distinct conv of ResNet-18/34/50 at 224 and of the FG-SSL heads.
fn resnet_shapes() -> Vec<(usize, usize, usize, usize, usize, usize)> {
    let mut v = vec![(3, 224, 64, 7, 2, 3)];
    // ResNet-18/34 basic blocks.
    for &(c, h) in &[(64, 56), (128, 28), (256, 14), (512, 7)] {
        v.push((c, h, c, 3, 1, 1));
        if c > 64 {
            v.push((c / 2, h * 2, c, 3, 2, 1));
            v.push((c / 2, h * 2, c, 1, 2, 0));
        }
    }
    // ResNet-50 bottlenecks: 1x1 reduce, 3x3 (stride 2 in the first block of stages 2-4), 1x1 expand, downsample.
    for &(width, h, first_in) in &[(64, 56, 64), (128, 28, 256), (256, 14, 512), (512, 7, 1024)] {
        let out = width * 4;
        let in_h = if width == 64 { h } else { h * 2 };
        let s = if width == 64 { 1 } else { 2 };
        v.push((first_in, in_h, width, 1, 1, 0));
        v.push((out, h, width, 1, 1, 0));
        v.push((width, in_h, width, 3, s, 1));
        v.push((width, h, width, 3, 1, 1));
        v.push((width, h, out, 1, 1, 0));
        v.push((first_in, in_h, out, 1, s, 0));
    }
    // FG-SSL hierarchical blocks: 3x3 convs from the stage outputs to 512 / 1024 channels.
    v.extend([(256, 28, 512, 3, 1, 1), (512, 14, 512, 3, 1, 1), (512, 14, 1024, 3, 1, 1), (1024, 7, 1024, 3, 1, 1), (2048, 7, 1024, 3, 1, 1)]);
    v
}

fn check_plan(p: &Plan, g: &Conv2dGeom) {
    p.validate(g).unwrap();
    let (m, n, k) = gemm_mnk(p.pass, g);
    assert_eq!((p.m, p.n, p.k), (m, n, k));
    let t = p.tile;
    assert_eq!(TILES[p.tile_index], t);
    assert!(p.grid.0 as usize * t.bn >= n && (p.grid.0 as usize - 1) * t.bn < n, "{p:?}: grid x does not cover N exactly");
    assert!(p.grid.1 as usize * t.bm >= m && (p.grid.1 as usize - 1) * t.bm < m, "{p:?}: grid y does not cover M exactly");
    assert_eq!(p.grid.2 as usize, p.splits);
    assert!(p.k_chunk % t.bk == 0 && p.k_chunk > 0, "{p:?}: k_chunk not a positive multiple of BK");
    assert!(p.splits * p.k_chunk >= k && (p.splits - 1) * p.k_chunk < k, "{p:?}: splits do not cover K exactly (an empty split)");
    assert!(p.splits <= MAX_SPLITS);
    if p.pass != Pass::Wgrad {
        assert_eq!(p.splits, 1, "{p:?}: only wgrad splits K");
    }
    assert_eq!(p.workspace_len, if p.splits > 1 { p.splits * m * n } else { 0 }, "{p:?}");
    assert!(t.threads() == 256 || t.threads() == 128);
    assert!(t.smem_bytes() <= 48 * 1024, "static smem must stay under 48 KiB");
}

#[test]
fn every_resnet_shape_gets_a_plan_covering_m_n_and_k() {
    for batch in [1, 2, 32, 128, 200] {
        for &(ci, h, co, k, s, p) in &resnet_shapes() {
            let g = Conv2dGeom::new(batch, ci, h, h, co, k, s, p);
            for sm in [1, 8, 132] {
                for pass in [Pass::Fwd, Pass::Dgrad, Pass::Wgrad] {
                    let pl = plan(pass, &g, sm).unwrap_or_else(|e| panic!("{g:?} {pass:?}: {e}"));
                    check_plan(&pl, &g);
                }
            }
        }
    }
    // The heuristic's choices at the shapes that matter most (H200: 132 SMs).
    let stem = Conv2dGeom::new(128, 3, 224, 224, 64, 7, 2, 3);
    assert_eq!(plan(Pass::Fwd, &stem, 132).unwrap().tile.name, "64x128");
    let l1 = Conv2dGeom::new(128, 64, 56, 56, 64, 1, 1, 0);
    let w = plan(Pass::Wgrad, &l1, 132).unwrap();
    assert!(w.splits >= 16 && w.k_chunk >= 256, "layer1 1x1 wgrad (K = 401408) must split: {w:?}");
    let l3 = Conv2dGeom::new(128, 256, 14, 14, 256, 3, 1, 1);
    assert_eq!(plan(Pass::Fwd, &l3, 132).unwrap().tile.name, "128x128");
}

#[test]
fn bad_geometries_are_errors_not_panics() {
    let mut g = Conv2dGeom::new(2, 3, 9, 9, 4, 3, 1, 1);
    g.ho += 1;
    assert!(plan(Pass::Fwd, &g, 132).unwrap_err().to_string().contains("inconsistent"));
    let mut g = Conv2dGeom::new(2, 3, 9, 9, 4, 3, 1, 1);
    g.stride = 0;
    assert!(plan(Pass::Wgrad, &g, 132).unwrap_err().to_string().contains("degenerate"));
    let huge = Conv2dGeom::new(4096, 512, 512, 512, 8, 1, 1, 0);
    assert!(plan(Pass::Fwd, &huge, 132).unwrap_err().to_string().contains("2^30"));
    // A forged plan (more z blocks than splits would write past the workspace) is refused.
    let g = Conv2dGeom::new(2, 4, 13, 11, 6, 3, 1, 1);
    let good = plan_with(Pass::Wgrad, &g, 3, 3).unwrap();
    good.validate(&g).unwrap();
    let mut bad = good;
    bad.grid.2 += 1;
    assert!(bad.validate(&g).is_err());
    let mut bad = good;
    bad.workspace_len -= 1;
    assert!(bad.validate(&g).is_err());
    let mut bad = good;
    bad.k_chunk += 1;
    assert!(bad.validate(&g).is_err());
    assert!(good.validate(&Conv2dGeom::new(2, 4, 13, 11, 7, 3, 1, 1)).is_err());
}

// ---- emulation of the kernel ---------------------------------------------------------------------------------------

/// Direct f64 convolution: (y, dx, dw) for inputs x, w, dy (the formulas of the header of conv2d.cu).
fn reference(g: &Conv2dGeom, x: &[f32], w: &[f32], dy: &[f32]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (mut y, mut dx, mut dw) = (vec![0f64; g.y_len()], vec![0f64; g.x_len()], vec![0f64; g.w_len()]);
    for img in 0..g.n {
        for co in 0..g.c_out {
            for oh in 0..g.ho {
                for ow in 0..g.wo {
                    let yi = ((img * g.c_out + co) * g.ho + oh) * g.wo + ow;
                    for ci in 0..g.c_in {
                        for i in 0..g.kh {
                            for j in 0..g.kw {
                                let (ih, iw) = ((oh * g.stride + i) as isize - g.pad as isize, (ow * g.stride + j) as isize - g.pad as isize);
                                if ih < 0 || iw < 0 || ih >= g.h as isize || iw >= g.w as isize {
                                    continue;
                                }
                                let xi = ((img * g.c_in + ci) * g.h + ih as usize) * g.w + iw as usize;
                                let wi = ((co * g.c_in + ci) * g.kh + i) * g.kw + j;
                                y[yi] += x[xi] as f64 * w[wi] as f64;
                                dx[xi] += dy[yi] as f64 * w[wi] as f64;
                                dw[wi] += dy[yi] as f64 * x[xi] as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    (y, dx, dw)
}

fn div(x: i32, f: &FastDiv) -> (i32, i32) {
    assert!(x >= 0, "the kernel never divides a negative index");
    let (q, r) = f.divmod(x as u32);
    (q as i32, r as i32)
}

/// One thread's registers that persist over the K loop (the setup part of `conv_gemm`).
#[derive(Clone, Default)]
struct ThreadSetup {
    a_off: Vec<i32>,
    a_ok: Vec<bool>,
    b_nok: bool,
    b_base: i32,
    b_y0: i32,
    b_x0: i32,
    wb_coff: Vec<i32>,
    wb_i: Vec<i32>,
    wb_j: Vec<i32>,
    wb_ok: Vec<bool>,
}

/// Runs `conv_gemm<BM, BN, BK, TM, TN, MODE>` of conv2d.cu for every block of `plan`, thread by thread between
/// barriers. `a`, `b` are the kernel's A and B operand pointers (fwd: w, x; dgrad: w, dy; wgrad: dy, x).
fn emulate(plan: &Plan, p: &ConvGemm, a: &[f32], b: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
    let t = plan.tile;
    let (bm, bn, bk, tm, tn) = (t.bm as i32, t.bn as i32, t.bk as i32, t.tm as i32, t.tn as i32);
    let (tx_n, ty_n) = (bn / tn, bm / tm);
    let nt = tx_n * ty_n;
    let (la, lb) = (bm * bk / nt, bn * bk / nt);
    assert!(nt % bk == 0 && nt % bn == 0 && (bm * bk) % nt == 0 && (bn * bk) % nt == 0);
    let mode = plan.pass;
    let rows = (bm + 4) as usize;
    let cols = (bn + 4) as usize;
    // A read must stay inside its operand (the kernel has no bounds check beyond the masks).
    let ld = |v: &[f32], i: i32| -> f32 { *v.get(usize::try_from(i).expect("negative index")).expect("read past the operand") };
    for bz in 0..plan.grid.2 as i32 {
        for by in 0..plan.grid.1 as i32 {
            for bx in 0..plan.grid.0 as i32 {
                let (m0, n0) = (by * bm, bx * bn);
                let k_begin = bz * p.k_chunk;
                let k_end = p.gk.min(k_begin + p.k_chunk);
                // Shared memory starts as garbage: NaN, so a read of an unwritten slot poisons the result.
                let mut a_s = vec![vec![f32::NAN; bk as usize * rows]; 2];
                let mut b_s = vec![vec![f32::NAN; bk as usize * cols]; 2];
                let mut setup = vec![ThreadSetup::default(); nt as usize];
                for tid in 0..nt {
                    let s = &mut setup[tid as usize];
                    for r in 0..la {
                        let m = m0 + tid / bk + r * (nt / bk);
                        let ok = m < p.gm;
                        let row_len = match mode {
                            Pass::Fwd => p.gk,
                            Pass::Dgrad => p.div_khkw.d as i32,
                            Pass::Wgrad => p.div_howo.d as i32,
                        };
                        s.a_ok.push(ok);
                        s.a_off.push(if ok { m * row_len } else { 0 });
                    }
                    if mode != Pass::Wgrad {
                        let n = n0 + tid % bn;
                        s.b_nok = n < p.gn;
                        let (img, pix) = div(if s.b_nok { n } else { 0 }, if mode == Pass::Fwd { &p.div_howo } else { &p.div_hw });
                        let (y, x) = div(pix, if mode == Pass::Fwd { &p.div_wo } else { &p.div_w });
                        if mode == Pass::Fwd {
                            s.b_base = img * p.c_in * p.div_hw.d as i32;
                            s.b_y0 = y * p.stride - p.pad;
                            s.b_x0 = x * p.stride - p.pad;
                        } else {
                            s.b_base = img * p.c_out * p.div_howo.d as i32;
                            s.b_y0 = y + p.pad;
                            s.b_x0 = x + p.pad;
                        }
                    } else {
                        for r in 0..lb {
                            let n = n0 + tid / bk + r * (nt / bk);
                            let ok = n < p.gn;
                            s.wb_ok.push(ok);
                            let (ci, ij) = div(if ok { n } else { 0 }, &p.div_khkw);
                            let (i, j) = div(ij, &p.div_kw);
                            s.wb_coff.push(ci * p.div_hw.d as i32);
                            s.wb_i.push(i - p.pad);
                            s.wb_j.push(j - p.pad);
                        }
                    }
                }
                // load_tile: the registers a_reg, b_reg of every thread for the K tile at k0.
                let load = |tid: i32, k0: i32| -> (Vec<f32>, Vec<f32>) {
                    let s = &setup[tid as usize];
                    let k = k0 + tid % bk;
                    let kin = k < k_end;
                    let base = match mode {
                        Pass::Fwd => k,
                        Pass::Dgrad => {
                            let (co, ij) = div(if kin { k } else { 0 }, &p.div_khkw);
                            co * p.c_in * p.div_khkw.d as i32 + ij
                        }
                        Pass::Wgrad => {
                            let (img, pix) = div(if kin { k } else { 0 }, &p.div_howo);
                            img * p.c_out * p.div_howo.d as i32 + pix
                        }
                    };
                    let a_reg = (0..la as usize).map(|r| if kin && s.a_ok[r] { ld(a, base + s.a_off[r]) } else { 0.0 }).collect();
                    let b_reg = match mode {
                        Pass::Fwd => (0..lb)
                            .map(|r| {
                                let k = k0 + tid / bn + r * (nt / bn);
                                let (ci, ij) = div(if k < k_end { k } else { 0 }, &p.div_khkw);
                                let (i, j) = div(ij, &p.div_kw);
                                let (ih, iw) = (s.b_y0 + i, s.b_x0 + j);
                                let ok = s.b_nok && k < k_end && (ih as u32) < p.h as u32 && (iw as u32) < p.w as u32;
                                if ok {
                                    ld(b, s.b_base + ci * p.div_hw.d as i32 + ih * p.w + iw)
                                } else {
                                    0.0
                                }
                            })
                            .collect(),
                        Pass::Dgrad => (0..lb)
                            .map(|r| {
                                let k = k0 + tid / bn + r * (nt / bn);
                                let (co, ij) = div(if k < k_end { k } else { 0 }, &p.div_khkw);
                                let (i, j) = div(ij, &p.div_kw);
                                let (th, tw) = (s.b_y0 - i, s.b_x0 - j);
                                let mut ok = s.b_nok && k < k_end && th >= 0 && tw >= 0;
                                let (oh, rh) = div(if ok { th } else { 0 }, &p.div_stride);
                                let (ow, rw) = div(if ok { tw } else { 0 }, &p.div_stride);
                                ok = ok && rh == 0 && rw == 0 && oh < p.ho && ow < p.wo;
                                if ok {
                                    ld(b, s.b_base + co * p.div_howo.d as i32 + oh * p.wo + ow)
                                } else {
                                    0.0
                                }
                            })
                            .collect(),
                        Pass::Wgrad => {
                            let (img, pix) = div(if kin { k } else { 0 }, &p.div_howo);
                            let (oh, ow) = div(pix, &p.div_wo);
                            let base = img * p.c_in * p.div_hw.d as i32;
                            (0..lb as usize)
                                .map(|r| {
                                    let (ih, iw) = (oh * p.stride + s.wb_i[r], ow * p.stride + s.wb_j[r]);
                                    let ok = kin && s.wb_ok[r] && (ih as u32) < p.h as u32 && (iw as u32) < p.w as u32;
                                    if ok {
                                        ld(b, base + s.wb_coff[r] + ih * p.w + iw)
                                    } else {
                                        0.0
                                    }
                                })
                                .collect()
                        }
                    };
                    (a_reg, b_reg)
                };
                let store = |a_s: &mut Vec<Vec<f32>>, b_s: &mut Vec<Vec<f32>>, buf: usize, tid: i32, regs: &(Vec<f32>, Vec<f32>)| {
                    for r in 0..la {
                        a_s[buf][(tid % bk) as usize * rows + (tid / bk + r * (nt / bk)) as usize] = regs.0[r as usize];
                    }
                    for r in 0..lb {
                        let (kk, nn) = if mode == Pass::Wgrad { (tid % bk, tid / bk + r * (nt / bk)) } else { (tid / bn + r * (nt / bn), tid % bn) };
                        b_s[buf][kk as usize * cols + nn as usize] = regs.1[r as usize];
                    }
                };
                let mut acc = vec![vec![0f32; (tm * tn) as usize]; nt as usize];
                if k_begin < k_end {
                    let mut buf = 0usize;
                    for tid in 0..nt {
                        let regs = load(tid, k_begin);
                        store(&mut a_s, &mut b_s, 0, tid, &regs);
                    }
                    let mut k0 = k_begin;
                    while k0 < k_end {
                        let next = k0 + bk < k_end;
                        let regs: Vec<_> = if next { (0..nt).map(|tid| load(tid, k0 + bk)).collect() } else { Vec::new() };
                        for tid in 0..nt {
                            let (tx, ty) = (tid % tx_n, tid / tx_n);
                            for kk in 0..bk as usize {
                                let av: Vec<f32> = (0..tm).map(|i| a_s[buf][kk * rows + ((i / 4) * 4 * ty_n + ty * 4 + i % 4) as usize]).collect();
                                let bv: Vec<f32> = (0..tn).map(|j| b_s[buf][kk * cols + ((j / 4) * 4 * tx_n + tx * 4 + j % 4) as usize]).collect();
                                for i in 0..tm as usize {
                                    for j in 0..tn as usize {
                                        let c = &mut acc[tid as usize][i * tn as usize + j];
                                        *c = av[i].mul_add(bv[j], *c);
                                    }
                                }
                            }
                        }
                        if next {
                            for tid in 0..nt {
                                store(&mut a_s, &mut b_s, buf ^ 1, tid, &regs[tid as usize]);
                            }
                        }
                        buf ^= 1;
                        k0 += bk;
                    }
                }
                for tid in 0..nt {
                    let (tx, ty) = (tid % tx_n, tid / tx_n);
                    for i in 0..tm {
                        let m = m0 + (i / 4) * 4 * ty_n + ty * 4 + i % 4;
                        if m >= p.gm {
                            continue;
                        }
                        let bias_m = if mode == Pass::Fwd { bias.map_or(0.0, |b| b[m as usize]) } else { 0.0 };
                        for j in 0..tn {
                            let n = n0 + (j / 4) * 4 * tx_n + tx * 4 + j % 4;
                            if n >= p.gn {
                                continue;
                            }
                            let v = acc[tid as usize][(i * tn + j) as usize];
                            match mode {
                                Pass::Fwd => {
                                    let (img, pix) = div(n, &p.div_howo);
                                    out[((img * p.c_out + m) * p.div_howo.d as i32 + pix) as usize] = v + bias_m;
                                }
                                Pass::Dgrad => {
                                    let (img, pix) = div(n, &p.div_hw);
                                    out[((img * p.c_in + m) * p.div_hw.d as i32 + pix) as usize] = v;
                                }
                                Pass::Wgrad if p.accumulate != 0 => out[(m * p.gn + n) as usize] += v,
                                Pass::Wgrad => out[bz as usize * (p.gm * p.gn) as usize + (m * p.gn + n) as usize] = v,
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Scale-relative max error of `got` against the f64 reference.
fn rel_err(got: &[f32], reference: &[f64]) -> f64 {
    assert_eq!(got.len(), reference.len());
    let scale = reference.iter().fold(0f64, |a, r| a.max(r.abs())).max(1e-30);
    got.iter().zip(reference).map(|(&g, &r)| if g.is_finite() { (g as f64 - r).abs() } else { f64::INFINITY }).fold(0f64, f64::max) / scale
}

/// Emulates every pass of `g` with the given tile and split request and checks it against the reference.
fn check_emulation(rng: &mut Rng, g: &Conv2dGeom, tile_index: usize, splits: usize, with_bias: bool) {
    let x = rng.vec_uniform(g.x_len(), -1.0, 1.0);
    let w = rng.vec_uniform(g.w_len(), -0.5, 0.5);
    let dy = rng.vec_uniform(g.y_len(), -1.0, 1.0);
    let bias = rng.vec_uniform(g.c_out, -0.5, 0.5);
    let (mut y_ref, dx_ref, mut dw_ref) = reference(g, &x, &w, &dy);
    let what = |pass: Pass, pl: &Plan| format!("{g:?} tile {} splits {} ({pass:?})", pl.tile.name, pl.splits);
    const TOL: f64 = 1e-5;

    let pl = plan_with(Pass::Fwd, g, tile_index, 1).unwrap();
    let mut y = vec![f32::NAN; g.y_len()];
    emulate(&pl, &ConvGemm::new(g, &pl), &w, &x, with_bias.then_some(&bias[..]), &mut y);
    if with_bias {
        for (i, v) in y_ref.iter_mut().enumerate() {
            *v += bias[(i / (g.ho * g.wo)) % g.c_out] as f64;
        }
    }
    let e = rel_err(&y, &y_ref);
    assert!(e <= TOL, "{}: rel err {e}", what(Pass::Fwd, &pl));

    let pl = plan_with(Pass::Dgrad, g, tile_index, 1).unwrap();
    let mut dx = vec![f32::NAN; g.x_len()];
    emulate(&pl, &ConvGemm::new(g, &pl), &w, &dy, None, &mut dx);
    let e = rel_err(&dx, &dx_ref);
    assert!(e <= TOL, "{}: rel err {e}", what(Pass::Dgrad, &pl));

    // wgrad accumulates into a non-zero dw: directly (one split) or through the workspace and the ordered reduce.
    let pl = plan_with(Pass::Wgrad, g, tile_index, splits).unwrap();
    let dw0 = rng.vec_uniform(g.w_len(), -1.0, 1.0);
    for (r, &d) in dw_ref.iter_mut().zip(&dw0) {
        *r += d as f64;
    }
    let p = ConvGemm::new(g, &pl);
    let mut dw = dw0.clone();
    if pl.splits == 1 {
        assert_eq!(p.accumulate, 1);
        emulate(&pl, &p, &dy, &x, None, &mut dw);
    } else {
        assert_eq!(p.accumulate, 0);
        let mut ws = vec![f32::NAN; pl.workspace_len];
        emulate(&pl, &p, &dy, &x, None, &mut ws);
        // conv2d_bwd_dw_reduce
        let len = pl.m * pl.n;
        for (i, d) in dw.iter_mut().enumerate() {
            let mut s = 0f32;
            for z in 0..pl.splits {
                s += ws[z * len + i];
            }
            *d += s;
        }
    }
    let e = rel_err(&dw, &dw_ref);
    assert!(e <= TOL, "{}: rel err {e}", what(Pass::Wgrad, &pl));
}

#[test]
fn kernel_emulation_matches_the_reference_for_every_tile() {
    let mut rng = Rng::new(11);
    // (n, c_in, h, w, c_out, k, stride, pad): odd sizes, stem-like, 1x1 s2 downsample, channels not multiples of tiles.
    let shapes = [
        (2, 3, 15, 13, 8, 7, 2, 3),
        (3, 5, 7, 7, 6, 3, 1, 1),
        (2, 16, 9, 9, 33, 3, 2, 1),
        (3, 5, 7, 7, 7, 1, 2, 0),
        (1, 70, 5, 6, 130, 1, 1, 0),
        (2, 9, 8, 8, 140, 3, 2, 1),
        (1, 3, 11, 11, 5, 4, 3, 2),
    ];
    for &(n, ci, h, w, co, k, s, p) in &shapes {
        let g = Conv2dGeom::new(n, ci, h, w, co, k, s, p);
        for tile in 0..TILES.len() {
            check_emulation(&mut rng, &g, tile, 1, tile % 2 == 0);
        }
    }
}

#[test]
fn kernel_emulation_matches_with_split_k() {
    let mut rng = Rng::new(12);
    // K = n*ho*wo = 2*13*11 = 286 and 1*20*20 = 400: several splits of a few BK tiles, the last one partial.
    for &(n, ci, h, w, co, k, s, p) in &[(2, 4, 13, 11, 6, 3, 1, 1), (1, 6, 40, 40, 5, 3, 2, 1)] {
        let g = Conv2dGeom::new(n, ci, h, w, co, k, s, p);
        for tile in 0..TILES.len() {
            for splits in [2, 3, 7, 1000] {
                check_emulation(&mut rng, &g, tile, splits, false);
            }
        }
    }
}

#[test]
fn non_square_inputs_and_kernels_are_planned_consistently() {
    // Conv2dGeom::new makes square kernels; a non-square input exercises h != w in every index.
    let g = Conv2dGeom::new(2, 3, 10, 17, 4, 3, 2, 1);
    assert_eq!((g.ho, g.wo), (5, 9));
    let mut rng = Rng::new(13);
    for tile in 0..TILES.len() {
        check_emulation(&mut rng, &g, tile, 3, true);
    }
}
