//! Host-side checks of the bf16 tensor-core convolution (`kernels/conv2d_bf16.cu`), runnable without a GPU:
//!
//! - an emulation of the kernel's index math, thread by thread: the cp.async loaders (which 16-byte chunk each thread
//!   copies into which shared-memory slot, zero fill included), the ldmatrix row addresses each lane supplies, the
//!   ldmatrix (plain and .trans) and mma.m16n8k16 fragment semantics as the PTX ISA defines them, the epilogue's
//!   fragment -> output mapping and the split-K reduction. Its result must equal a direct convolution (exactly up to
//!   f32 summation order: tolerance 1e-5 of the output scale) for every pass, both tiles, odd shapes, padded channels;
//! - the launcher's tile / split plan for every conv shape of ResNet-50 at batch 128 (and the heads);
//! - the layout conversions' index math (host twins) against direct indexing;
//! - the conv shape list against the model's registered weights.

use fgssl::backend::cuda::launch::conv2d_bf16::{
    bf16_value, host_nchw_to_nhwc, host_nchw_to_nhwc_f32, host_nhwc_to_nchw, pad8, round_bf16, ConvBf16Geom, Pass, Plan, Tile, BK, STAGES, TILES,
};
use fgssl::backend::geom::Conv2dGeom;
use fgssl::rng::Rng;
use fgssl::selftest::conv_bf16::{conv_shapes, ConvShape};

// ---- PTX semantics ------------------------------------------------------------------------------------------------

/// `ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16`: lane `l` supplies the byte address of row `l % 8` of matrix
/// `l / 8`; register `q` of lane `l` holds, without .trans, elements (row l/4, cols 2(l%4), 2(l%4)+1) of matrix q,
/// with .trans elements (rows 2(l%4), 2(l%4)+1; col l/4). Low half = first element.
fn ldmatrix_x4(smem: &[f32], addr: &[usize; 32], trans: bool) -> [[(f32, f32); 4]; 32] {
    let mut out = [[(0f32, 0f32); 4]; 32];
    for (l, regs) in out.iter_mut().enumerate() {
        for (q, reg) in regs.iter_mut().enumerate() {
            let at = |row: usize, col: usize| {
                let a = addr[8 * q + row];
                assert_eq!(a % 16, 0, "ldmatrix row address must be 16-byte aligned");
                smem[a / 2 + col]
            };
            *reg = if trans { (at(2 * (l % 4), l / 4), at(2 * (l % 4) + 1, l / 4)) } else { (at(l / 4, 2 * (l % 4)), at(l / 4, 2 * (l % 4) + 1)) };
        }
    }
    out
}

/// `mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32`, fragments per the PTX ISA: g = lane/4, t = lane%4;
/// A: a0 (g, 2t..), a1 (g+8, 2t..), a2 (g, 2t+8..), a3 (g+8, 2t+8..); B: b0 (k 2t.., n g), b1 (k 2t+8.., n g);
/// C/D: c0,c1 (g, 2t..), c2,c3 (g+8, 2t..).
#[allow(clippy::needless_range_loop)] // lane/element indices as the PTX ISA tables give them
fn mma(d: &mut [[f32; 4]; 32], a: &[[(f32, f32); 4]; 32], b: &[[(f32, f32); 2]; 32]) {
    let (mut am, mut bm) = ([[0f32; 16]; 16], [[0f32; 8]; 16]);
    for l in 0..32 {
        let (g, t) = (l / 4, l % 4);
        for (r, (dr, dc)) in [(0, 0), (8, 0), (0, 8), (8, 8)].iter().enumerate() {
            am[g + dr][2 * t + dc] = a[l][r].0;
            am[g + dr][2 * t + dc + 1] = a[l][r].1;
        }
        for (r, dk) in [0, 8].iter().enumerate() {
            bm[2 * t + dk][g] = b[l][r].0;
            bm[2 * t + dk + 1][g] = b[l][r].1;
        }
    }
    for (l, dl) in d.iter_mut().enumerate() {
        let (g, t) = (l / 4, l % 4);
        for e in 0..4 {
            let (row, col) = (g + 8 * (e / 2), 2 * t + e % 2);
            dl[e] += (0..16).map(|k| am[row][k] * bm[k][col]).sum::<f32>();
        }
    }
}

// ---- the kernel, transliterated --------------------------------------------------------------------------------------

const PAD: usize = 8;

struct Layout {
    warps_m: usize,
    warps_n: usize,
    threads: usize,
    mi: usize,
    ni: usize,
    lda: usize,
    ldb: usize,
    a_stage: usize,
    b_stage: usize,
    a_chunks: usize,
    b_chunks: usize,
}

fn layout(tile: Tile, pass: Pass) -> Layout {
    // WM x WN = 64x32 (128x128, 8 warps) or 32x32 (64x64, 4 warps), as CONV_BF16_ENTRY.
    let (wm, wn) = if tile.bm == 128 { (64, 32) } else { (32, 32) };
    let (warps_m, warps_n) = (tile.bm / wm, tile.bn / wn);
    assert_eq!(warps_m * warps_n, tile.warps);
    let threads = 32 * tile.warps;
    let mn = pass == Pass::Wgrad;
    let (lda, ldb) = if mn { (tile.bm + PAD, tile.bn + PAD) } else { (BK + PAD, BK + PAD) };
    let (a_stage, b_stage) = if mn { (BK * lda, BK * ldb) } else { (tile.bm * lda, tile.bn * ldb) };
    assert_eq!(STAGES * (a_stage + b_stage) * 2, tile.smem_bytes(pass), "host smem size mirrors ConvTile::SMEM_BYTES");
    Layout {
        warps_m,
        warps_n,
        threads,
        mi: wm / 16,
        ni: wn / 8,
        lda,
        ldb,
        a_stage,
        b_stage,
        a_chunks: tile.bm * BK / 8 / threads,
        b_chunks: tile.bn * BK / 8 / threads,
    }
}

/// One 16-byte copy: element offset of the source (None = zero fill) into smem element `dst`.
fn copy16(smem: &mut [f32], dst: usize, src: Option<usize>, data: &[f32]) {
    assert_eq!(dst % 8, 0, "cp.async destination must be 16-byte aligned");
    for e in 0..8 {
        smem[dst + e] = match src {
            Some(s) => {
                assert_eq!(s % 8, 0, "cp.async source must be 16-byte aligned");
                data[s + e]
            }
            None => 0.0,
        };
    }
}

/// Runs block (bx, by, bz) of `pass` and writes its outputs into `out` (`[M, N]`, or `[splits, M, N]` for wgrad).
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
fn run_block(pass: Pass, tile: Tile, g: &ConvBf16Geom, a_src: &[f32], b_src: &[f32], out: &mut [f32], bx: usize, by: usize, bz: usize) {
    let lay = layout(tile, pass);
    let (m_dim, n_dim, k_dim) = g.gemm_dims(pass);
    let (m0, n0) = (by * tile.bm, bx * tile.bn);
    let k_tiles = k_dim.div_ceil(BK);
    let per = g.k_tiles_per_split as usize;
    let (kt_begin, kt_end) = (bz * per, (bz * per + per).min(k_tiles));
    let (h, w, c, co, kw, s, p) = (g.h as i64, g.w as i64, g.c as usize, g.c_out as usize, g.kw as usize, g.stride as i64, g.pad as i64);
    let (ho, wo) = (g.ho as i64, g.wo as i64);
    let mut smem = vec![f32::NAN; STAGES * (lay.a_stage + lay.b_stage)];
    let sb = STAGES * lay.a_stage;
    let mut acc = vec![[[0f32; 4]; 32]; lay.warps_m * lay.warps_n * lay.mi * lay.ni];
    for kt in kt_begin..kt_end {
        let stage = (kt - kt_begin) % STAGES;
        for tid in 0..lay.threads {
            if pass != Pass::Wgrad {
                let kc = tid % (BK / 8);
                let k = kt * BK + kc * 8;
                let kvalid = k < k_dim;
                let cdiv = if pass == Pass::Fwd { c } else { co };
                let (i, j, c0) = if kvalid { ((k / cdiv) / kw, (k / cdiv) % kw, k % cdiv) } else { (0, 0, 0) };
                for t in 0..lay.a_chunks {
                    let row = (tid + t * lay.threads) / (BK / 8);
                    let m = m0 + row;
                    let src = if !kvalid || m >= m_dim {
                        None
                    } else if pass == Pass::Fwd {
                        let ohw = (ho * wo) as usize;
                        let (img, r) = (m / ohw, m % ohw);
                        let (ih, iw) = ((r as i64 / wo) * s - p + i as i64, (r as i64 % wo) * s - p + j as i64);
                        (ih >= 0 && ih < h && iw >= 0 && iw < w).then(|| (((img as i64 * h + ih) * w + iw) as usize) * c + c0)
                    } else {
                        let hw = (h * w) as usize;
                        let (img, r) = (m / hw, m % hw);
                        let (th, tw) = ((r as i64 / w) + p - i as i64, (r as i64 % w) + p - j as i64);
                        let ok = th >= 0 && tw >= 0 && th % s == 0 && tw % s == 0 && th / s < ho && tw / s < wo;
                        ok.then(|| (((img as i64 * ho + th / s) * wo + tw / s) as usize) * co + c0)
                    };
                    copy16(&mut smem, stage * lay.a_stage + row * lay.lda + kc * 8, src, a_src);
                }
                for t in 0..lay.b_chunks {
                    let row = (tid + t * lay.threads) / (BK / 8);
                    let nrow = n0 + row;
                    let src = (kvalid && nrow < n_dim).then(|| nrow * k_dim + k);
                    copy16(&mut smem, sb + stage * lay.b_stage + row * lay.ldb + kc * 8, src, b_src);
                }
            } else {
                let (a_mc, b_nc) = (tid % (tile.bm / 8), tid % (tile.bn / 8));
                let (mcol, ncol) = (m0 + a_mc * 8, n0 + b_nc * 8);
                for t in 0..lay.a_chunks {
                    let kr = (tid + t * lay.threads) / (tile.bm / 8);
                    let pix = kt * BK + kr;
                    let src = (mcol < m_dim && pix < k_dim).then(|| pix * co + mcol);
                    copy16(&mut smem, stage * lay.a_stage + kr * lay.lda + a_mc * 8, src, a_src);
                }
                for t in 0..lay.b_chunks {
                    let kr = (tid + t * lay.threads) / (tile.bn / 8);
                    let pix = kt * BK + kr;
                    let src = if ncol < n_dim && pix < k_dim {
                        let (tap, c0) = (ncol / c, ncol % c);
                        let (bi, bj) = ((tap / kw) as i64, (tap % kw) as i64);
                        let ohw = (ho * wo) as usize;
                        let (img, r) = (pix / ohw, (pix % ohw) as i64);
                        let (ih, iw) = ((r / wo) * s - p + bi, (r % wo) * s - p + bj);
                        (ih >= 0 && ih < h && iw >= 0 && iw < w).then(|| (((img as i64 * h + ih) * w + iw) as usize) * c + c0)
                    } else {
                        None
                    };
                    copy16(&mut smem, sb + stage * lay.b_stage + kr * lay.ldb + b_nc * 8, src, b_src);
                }
            }
        }
        // compute, warp by warp, with byte addresses as the kernel forms them
        let (a_base, b_base) = (stage * lay.a_stage * 2, (sb + stage * lay.b_stage) * 2);
        for warp in 0..lay.warps_m * lay.warps_n {
            let (warp_m, warp_n) = (warp / lay.warps_n, warp % lay.warps_n);
            for kk in 0..BK / 16 {
                let mut af = Vec::new();
                for mi in 0..lay.mi {
                    let m = warp_m * (tile.bm / lay.warps_m) + mi * 16;
                    let addr: [usize; 32] = std::array::from_fn(|lane| {
                        let (q, r8) = (lane >> 3, lane & 7);
                        if pass != Pass::Wgrad {
                            a_base + ((m + (q & 1) * 8 + r8) * lay.lda + kk * 16 + (q >> 1) * 8) * 2
                        } else {
                            a_base + ((kk * 16 + (q >> 1) * 8 + r8) * lay.lda + m + (q & 1) * 8) * 2
                        }
                    });
                    af.push(ldmatrix_x4(&smem, &addr, pass == Pass::Wgrad));
                }
                let mut bf = vec![[[(0f32, 0f32); 2]; 32]; lay.ni];
                for nj in 0..lay.ni / 2 {
                    let n = warp_n * (tile.bn / lay.warps_n) + nj * 16;
                    let addr: [usize; 32] = std::array::from_fn(|lane| {
                        let (q, r8) = (lane >> 3, lane & 7);
                        if pass != Pass::Wgrad {
                            b_base + ((n + (q >> 1) * 8 + r8) * lay.ldb + kk * 16 + (q & 1) * 8) * 2
                        } else {
                            b_base + ((kk * 16 + (q & 1) * 8 + r8) * lay.ldb + n + (q >> 1) * 8) * 2
                        }
                    });
                    let t4 = ldmatrix_x4(&smem, &addr, pass == Pass::Wgrad);
                    for lane in 0..32 {
                        bf[2 * nj][lane] = [t4[lane][0], t4[lane][1]];
                        bf[2 * nj + 1][lane] = [t4[lane][2], t4[lane][3]];
                    }
                }
                for mi in 0..lay.mi {
                    for ni in 0..lay.ni {
                        mma(&mut acc[(warp * lay.mi + mi) * lay.ni + ni], &af[mi], &bf[ni]);
                    }
                }
            }
        }
    }
    // epilogue
    for warp in 0..lay.warps_m * lay.warps_n {
        let (warp_m, warp_n) = (warp / lay.warps_n, warp % lay.warps_n);
        for mi in 0..lay.mi {
            for ni in 0..lay.ni {
                for lane in 0..32 {
                    for hh in 0..2 {
                        let row = m0 + warp_m * (tile.bm / lay.warps_m) + mi * 16 + (lane >> 2) + hh * 8;
                        let col = n0 + warp_n * (tile.bn / lay.warps_n) + ni * 8 + (lane & 3) * 2;
                        if row >= m_dim || col >= n_dim {
                            continue;
                        }
                        let a = &acc[(warp * lay.mi + mi) * lay.ni + ni][lane];
                        let base = if pass == Pass::Wgrad { bz * m_dim * n_dim } else { 0 } + row * n_dim + col;
                        assert!(out[base].is_nan() && out[base + 1].is_nan(), "output ({row}, {col}) written twice");
                        out[base] = a[2 * hh];
                        out[base + 1] = a[2 * hh + 1];
                    }
                }
            }
        }
    }
}

/// The whole launch: every block of the plan, then (wgrad) the split reduction into `dw` (+=).
fn emulate(pass: Pass, plan: &Plan, a_src: &[f32], b_src: &[f32], dw_init: Option<&[f32]>) -> Vec<f32> {
    let g = &plan.geom;
    let (m, n, _) = g.gemm_dims(pass);
    let splits = plan.grid.2 as usize;
    let mut out = vec![f32::NAN; splits * m * n];
    for bz in 0..splits {
        for by in 0..plan.grid.1 as usize {
            for bx in 0..plan.grid.0 as usize {
                run_block(pass, plan.tile, g, a_src, b_src, &mut out, bx, by, bz);
            }
        }
    }
    assert!(out.iter().all(|v| !v.is_nan()), "{pass:?}: some output was never written");
    if pass != Pass::Wgrad {
        return out;
    }
    let mut dw = dw_init.expect("wgrad accumulates").to_vec();
    for (i, d) in dw.iter_mut().enumerate() {
        *d += (0..splits).map(|z| out[z * m * n + i]).sum::<f32>();
    }
    dw
}

// ---- direct references (NHWC, f64) -----------------------------------------------------------------------------------

fn ref_fwd(g: &ConvBf16Geom, x: &[f32], w: &[f32]) -> Vec<f32> {
    let (n, h, wd, c, co, kh, kw, s, p, ho, wo) = dims(g);
    let mut y = vec![0f32; n * ho * wo * co];
    for img in 0..n {
        for oh in 0..ho {
            for ow in 0..wo {
                for o in 0..co {
                    let mut acc = 0f64;
                    for i in 0..kh {
                        for j in 0..kw {
                            let (ih, iw) = ((oh * s + i) as i64 - p as i64, (ow * s + j) as i64 - p as i64);
                            if ih < 0 || iw < 0 || ih >= h as i64 || iw >= wd as i64 {
                                continue;
                            }
                            for ci in 0..c {
                                acc += x[((img * h + ih as usize) * wd + iw as usize) * c + ci] as f64 * w[((o * kh + i) * kw + j) * c + ci] as f64;
                            }
                        }
                    }
                    y[((img * ho + oh) * wo + ow) * co + o] = acc as f32;
                }
            }
        }
    }
    y
}

/// dx and dw by scattering every (output, tap) product: independent of the kernels' gather formulation.
fn ref_bwd(g: &ConvBf16Geom, x: &[f32], w: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (n, h, wd, c, co, kh, kw, s, p, ho, wo) = dims(g);
    let (mut dx, mut dw) = (vec![0f64; x.len()], vec![0f64; w.len()]);
    for img in 0..n {
        for oh in 0..ho {
            for ow in 0..wo {
                for o in 0..co {
                    let d = dy[((img * ho + oh) * wo + ow) * co + o] as f64;
                    for i in 0..kh {
                        for j in 0..kw {
                            let (ih, iw) = ((oh * s + i) as i64 - p as i64, (ow * s + j) as i64 - p as i64);
                            if ih < 0 || iw < 0 || ih >= h as i64 || iw >= wd as i64 {
                                continue;
                            }
                            for ci in 0..c {
                                let xi = ((img * h + ih as usize) * wd + iw as usize) * c + ci;
                                let wi = ((o * kh + i) * kw + j) * c + ci;
                                dx[xi] += d * w[wi] as f64;
                                dw[wi] += d * x[xi] as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    (dx.into_iter().map(|v| v as f32).collect(), dw.into_iter().map(|v| v as f32).collect())
}

type Dims = (usize, usize, usize, usize, usize, usize, usize, usize, usize, usize, usize);
fn dims(g: &ConvBf16Geom) -> Dims {
    let u = |v: u32| v as usize;
    (u(g.n), u(g.h), u(g.w), u(g.c), u(g.c_out), u(g.kh), u(g.kw), u(g.stride), u(g.pad), u(g.ho), u(g.wo))
}

fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0f64, |a, &v| a.max((v as f64).abs())).max(1e-30);
    for (i, (&g, &r)) in got.iter().zip(want).enumerate() {
        let d = (g as f64 - r as f64).abs();
        assert!(d <= tol * scale, "{what}: element {i}: {g} vs {r} (|diff| {d:.3e}, scale {scale:.3e})");
    }
}

/// Random bf16-representable values, zero in the padding channels (as the conversion kernel writes them).
fn bf16_nhwc(rng: &mut Rng, pixels: usize, c_real: usize, c: usize) -> Vec<f32> {
    let mut v = vec![0f32; pixels * c];
    for px in 0..pixels {
        for ch in 0..c_real {
            v[px * c + ch] = round_bf16(rng.uniform_in(-1.0, 1.0));
        }
    }
    v
}

#[allow(clippy::too_many_arguments)]
fn check_shape(n: usize, c_in: usize, hw: usize, c_out: usize, k: usize, s: usize, p: usize, sms: usize) {
    let cg = Conv2dGeom::new(n, c_in, hw, hw + 1, c_out, k, s, p);
    let g = ConvBf16Geom::new(&cg).unwrap();
    let mut rng = Rng::new((n * 1000 + c_in * 10 + k) as u64);
    let x = bf16_nhwc(&mut rng, cg.n * cg.h * cg.w, c_in, g.c as usize);
    let w = bf16_nhwc(&mut rng, c_out * k * k, c_in, g.c as usize);
    let dy: Vec<f32> = (0..g.y_len()).map(|_| round_bf16(rng.uniform_in(-1.0, 1.0))).collect();
    let desc = format!("n{n} c{c_in} {hw}x{} -> c{c_out} k{k} s{s} p{p} (sms {sms})", hw + 1);

    let plan = Plan::new(Pass::Fwd, &g, sms).unwrap();
    assert_close(&format!("fwd {desc} tile {:?}", plan.tile), &emulate(Pass::Fwd, &plan, &x, &w, None), &ref_fwd(&g, &x, &w), 1e-5);

    let (dx_ref, dw_ref) = ref_bwd(&g, &x, &w, &dy);
    // dgrad's B operand is the transposed weight copy [c, kh, kw, c_out] (conv2d_bf16_weight_transpose).
    let khw = k * k;
    let c = g.c as usize;
    let mut wt = vec![0f32; w.len()];
    for (idx, v) in wt.iter_mut().enumerate() {
        let (o, t, ci) = (idx % c_out, (idx / c_out) % khw, idx / (c_out * khw));
        *v = w[(o * khw + t) * c + ci];
    }
    let plan = Plan::new(Pass::Dgrad, &g, sms).unwrap();
    assert_close(&format!("dgrad {desc} tile {:?}", plan.tile), &emulate(Pass::Dgrad, &plan, &dy, &wt, None), &dx_ref, 1e-5);

    let plan = Plan::new(Pass::Wgrad, &g, sms).unwrap();
    let init: Vec<f32> = (0..w.len()).map(|_| rng.uniform_in(-1.0, 1.0)).collect();
    let want: Vec<f32> = init.iter().zip(&dw_ref).map(|(a, b)| a + b).collect();
    let got = emulate(Pass::Wgrad, &plan, &dy, &x, Some(&init));
    assert_close(&format!("wgrad {desc} tile {:?} splits {}", plan.tile, plan.splits), &got, &want, 1e-5);
}

#[test]
fn emulated_kernels_match_direct_convolution() {
    // sms 1 picks the 128x128 tile, sms 10_000 the 64x64 tile (and many wgrad splits): both get exercised.
    for sms in [1, 10_000] {
        check_shape(2, 3, 9, 16, 7, 2, 3, sms); // stem-like: 3 channels padded to 8
        check_shape(1, 16, 7, 24, 3, 1, 1, sms);
        check_shape(2, 24, 8, 16, 3, 2, 1, sms); // even input, stride 2
        check_shape(1, 40, 5, 136, 1, 1, 0, sms); // N not a multiple of the tile
        check_shape(2, 32, 7, 72, 1, 2, 0, sms); // 1x1 stride-2 downsample
    }
}

#[test]
fn split_k_covers_k_exactly() {
    for k in [1, 31, 32, 33, 1000, 401_408] {
        for blocks in [1, 7, 200, 5000] {
            let (splits, per) = fgssl::backend::cuda::launch::conv2d_bf16::split_k(k, blocks, 132);
            let k_tiles = k.div_ceil(BK);
            assert!(splits >= 1 && per >= 1);
            assert!(splits * per >= k_tiles && (splits - 1) * per < k_tiles, "k {k} blocks {blocks}: {splits} x {per} vs {k_tiles} tiles");
        }
    }
}

#[test]
fn every_resnet50_shape_has_a_plan_within_the_limits() {
    for shape in conv_shapes(fgssl::model::resnet::Arch::ResNet50, 224, true) {
        let g = ConvBf16Geom::new(&shape.geom(128)).unwrap_or_else(|e| panic!("{}: {e}", shape.name));
        for pass in Pass::ALL {
            let plan = Plan::new(pass, &g, 132).unwrap_or_else(|e| panic!("{} {pass:?}: {e}", shape.name));
            assert!(TILES.contains(&plan.tile));
            assert!(plan.tile.smem_bytes(pass) <= 227 * 1024, "{} {pass:?}: smem", shape.name);
            let (m, n, _) = g.gemm_dims(pass);
            assert!(plan.grid.0 as usize * plan.tile.bn >= n && plan.grid.1 as usize * plan.tile.bm >= m);
            assert!(plan.grid.1 <= 65535 && plan.grid.2 <= 65535);
        }
    }
}

#[test]
fn layout_conversions_index_as_documented() {
    let (n, c, hw, c_pad) = (2, 3, 5, 8);
    let x: Vec<f32> = (0..n * c * hw).map(|i| i as f32 * 0.5 - 7.0).collect();
    let y = host_nchw_to_nhwc([n, c, hw, c_pad], &x);
    for img in 0..n {
        for p in 0..hw {
            for ch in 0..c_pad {
                let want = if ch < c { round_bf16(x[(img * c + ch) * hw + p]) } else { 0.0 };
                assert_eq!(bf16_value(y[(img * hw + p) * c_pad + ch]), want);
            }
        }
    }
    let back = host_nhwc_to_nchw([n, c, hw, c_pad], &y.iter().map(|&b| bf16_value(b)).collect::<Vec<_>>());
    assert_eq!(back, x.iter().map(|&v| round_bf16(v)).collect::<Vec<_>>());
    let f = host_nchw_to_nhwc_f32([n, c, hw, c_pad], &x);
    assert_eq!(host_nhwc_to_nchw([n, c, hw, c_pad], &f), x);
    assert_eq!(pad8(3), 8);
    assert_eq!(pad8(64), 64);
    // round to nearest even at the bf16 halfway point
    assert_eq!(round_bf16(f32::from_bits(0x3f80_8000)), f32::from_bits(0x3f80_0000));
    assert_eq!(round_bf16(f32::from_bits(0x3f81_8000)), f32::from_bits(0x3f82_0000));
}

#[test]
fn shape_list_matches_the_models_weights() {
    use fgssl::model::fgssl::{Fgssl, FgsslConfig};
    use fgssl::model::resnet::Arch;
    for arch in Arch::ALL {
        let (_, reg) = Fgssl::new(FgsslConfig::new(arch), 0.1);
        let mut from_model: Vec<(usize, usize, usize)> =
            reg.params.entries.iter().filter(|e| e.shape.len() == 4).map(|e| (e.shape[0], e.shape[1], e.shape[2])).collect();
        let mut from_list: Vec<(usize, usize, usize)> =
            conv_shapes(arch, 224, true).iter().flat_map(|s: &ConvShape| std::iter::repeat_n((s.c_out, s.c_in, s.k), s.count)).collect();
        from_model.sort();
        from_list.sort();
        assert_eq!(from_model, from_list, "{arch}: conv weights of the model vs the lab's shape list");
    }
}
