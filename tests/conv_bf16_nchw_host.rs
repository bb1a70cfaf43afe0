//! Host-side check of the bf16 convolution's NCHW f32 boundary (`launch::conv2d_bf16_nchw`, what
//! `Cuda::conv2d_fwd` / `conv2d_bwd` run with `Precision::Bf16`), runnable without a GPU: the launcher's pipeline
//! replayed step by step with the host twins of its kernels, at the dimensions [`NchwBoundary`] gives the launcher:
//!
//! - the layout conversions (`conv2d_bf16_nchw_to_nhwc` for x, w and dy; `conv2d_bf16_nhwc_f32_to_nchw` with its
//!   bias and accumulate arguments for y, dx and dw), the zeroed padded weight rows and the zeroed dw workspace;
//! - the three GEMMs as the kernel header defines them (A, B and the output indexed in the kernels' NHWC layouts at
//!   the padded geometry the launchers get: `C = pad8(c_in)` channels, `O' = pad8(c_out)` output channels), with
//!   dgrad reading the transposed weights (`conv2d_bf16_weight_transpose`). The kernels' tiling of these GEMMs is
//!   emulated thread by thread in tests/conv_bf16_host.rs.
//!
//! The result must equal the CPU reference's bf16 emulation (`Cpu::with_precision(Precision::Bf16)`) up to
//! summation order: scale-relative error at most 1e-5 (f64 sums here, f32 there). An index in the wrong place moves
//! a value by the order of the output scale.

use fgssl::backend::cpu::Cpu;
use fgssl::backend::cuda::launch::conv2d_bf16::{bf16_value, host_nchw_to_nhwc, host_nhwc_f32_to_nchw_with, ConvBf16Geom};
use fgssl::backend::cuda::launch::conv2d_bf16_nchw::NchwBoundary;
use fgssl::backend::geom::Conv2dGeom;
use fgssl::backend::{Backend, Precision};
use fgssl::rng::Rng;

const TOL: f64 = 1e-5;

fn random(rng: &mut Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.uniform_in(-scale, scale)).collect()
}

fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0f64, |a, &w| a.max((w as f64).abs())).max(1e-30);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w as f64).abs() / scale;
        assert!(err <= TOL, "{what}[{i}] = {g}, want {w} (error {err:.2e} of scale {scale:.3e})");
    }
}

/// The kernel header's GEMM `C[m, n] = Σ_k A(m, k) B(n, k)` over `m < M, n < N, k < K`, in f64.
fn gemm(m: usize, n: usize, k: usize, a: impl Fn(usize, usize) -> f32, b: impl Fn(usize, usize) -> f32) -> Vec<f32> {
    let mut c = vec![0f32; m * n];
    for mi in 0..m {
        for ni in 0..n {
            c[mi * n + ni] = (0..k).map(|ki| a(mi, ki) as f64 * b(ni, ki) as f64).sum::<f64>() as f32;
        }
    }
    c
}

/// A pixel of an NHWC tensor of `h x w` pixels and `c` channels at `(img, y, x)`, zero outside the image.
#[allow(clippy::too_many_arguments)]
fn pixel(t: &[u16], c: usize, h: usize, w: usize, img: usize, y: isize, x: isize, ch: usize) -> f32 {
    if y < 0 || x < 0 || y >= h as isize || x >= w as isize {
        return 0.0;
    }
    bf16_value(t[((img * h + y as usize) * w + x as usize) * c + ch])
}

/// `(i, j, c)` of reduction index `k` with `c` channels innermost (the kernels' K order).
fn tap(k: usize, c: usize, kw: usize) -> (usize, usize, usize) {
    let (t, ch) = (k / c, k % c);
    (t / kw, t % kw, ch)
}

/// fwd: M = n*ho*wo, N = O', K = kh*kw*C; A[m, (i, j, c)] = x[img, oh*s+i-p, ow*s+j-p, c], B[co, k] = w[co, k].
fn host_fwd(bg: &ConvBf16Geom, x16: &[u16], w16: &[u16]) -> Vec<f32> {
    let u = |v: u32| v as usize;
    let (c, kw, s, p) = (u(bg.c), u(bg.kw), u(bg.stride) as isize, u(bg.pad) as isize);
    let (m, n, k) = (u(bg.n) * u(bg.ho) * u(bg.wo), u(bg.c_out), u(bg.kh) * kw * c);
    let a = |mi: usize, ki: usize| {
        let (img, r) = (mi / (u(bg.ho) * u(bg.wo)), mi % (u(bg.ho) * u(bg.wo)));
        let (oh, ow) = ((r / u(bg.wo)) as isize, (r % u(bg.wo)) as isize);
        let (i, j, ch) = tap(ki, c, kw);
        pixel(x16, c, u(bg.h), u(bg.w), img, oh * s + i as isize - p, ow * s + j as isize - p, ch)
    };
    gemm(m, n, k, a, |ni, ki| bf16_value(w16[ni * k + ki]))
}

/// `conv2d_bf16_weight_transpose`: wt[ci, t, co] = w[co, t, ci].
fn host_transpose(bg: &ConvBf16Geom, w16: &[u16]) -> Vec<u16> {
    let (co_n, khw, c) = (bg.c_out as usize, (bg.kh * bg.kw) as usize, bg.c as usize);
    let mut wt = vec![0u16; w16.len()];
    for ci in 0..c {
        for t in 0..khw {
            for co in 0..co_n {
                wt[(ci * khw + t) * co_n + co] = w16[(co * khw + t) * c + ci];
            }
        }
    }
    wt
}

/// dgrad: M = n*h*w, N = C, K = kh*kw*O'; A[m, (i, j, co)] = dy[img, (ih+p-i)/s, (iw+p-j)/s, co] where divisible
/// and in range, B[ci, (i, j, co)] = wt[ci, i, j, co].
fn host_dgrad(bg: &ConvBf16Geom, dy16: &[u16], wt: &[u16]) -> Vec<f32> {
    let u = |v: u32| v as usize;
    let (o, kw, s, p) = (u(bg.c_out), u(bg.kw), u(bg.stride) as isize, u(bg.pad) as isize);
    let (m, n, k) = (u(bg.n) * u(bg.h) * u(bg.w), u(bg.c), u(bg.kh) * kw * o);
    let a = |mi: usize, ki: usize| {
        let (img, r) = (mi / (u(bg.h) * u(bg.w)), mi % (u(bg.h) * u(bg.w)));
        let (ih, iw) = ((r / u(bg.w)) as isize, (r % u(bg.w)) as isize);
        let (i, j, co) = tap(ki, o, kw);
        let (th, tw) = (ih + p - i as isize, iw + p - j as isize);
        if th < 0 || tw < 0 || th % s != 0 || tw % s != 0 {
            return 0.0;
        }
        pixel(dy16, o, u(bg.ho), u(bg.wo), img, th / s, tw / s, co)
    };
    gemm(m, n, k, a, |ni, ki| bf16_value(wt[ni * k + ki]))
}

/// wgrad: M = O', N = kh*kw*C, K = n*ho*wo; A[co, pix] = dy[pix, co], B[(i, j, c), pix] = x[img, oh*s+i-p, ...].
fn host_wgrad(bg: &ConvBf16Geom, x16: &[u16], dy16: &[u16]) -> Vec<f32> {
    let u = |v: u32| v as usize;
    let (c, o, kw, s, p) = (u(bg.c), u(bg.c_out), u(bg.kw), u(bg.stride) as isize, u(bg.pad) as isize);
    let (m, n, k) = (o, u(bg.kh) * kw * c, u(bg.n) * u(bg.ho) * u(bg.wo));
    let b = |ni: usize, pix: usize| {
        let (i, j, ch) = tap(ni, c, kw);
        let (img, r) = (pix / (u(bg.ho) * u(bg.wo)), pix % (u(bg.ho) * u(bg.wo)));
        let (oh, ow) = ((r / u(bg.wo)) as isize, (r % u(bg.wo)) as isize);
        pixel(x16, c, u(bg.h), u(bg.w), img, oh * s + i as isize - p, ow * s + j as isize - p, ch)
    };
    gemm(m, n, k, |mi, pix| bf16_value(dy16[pix * o + mi]), b)
}

/// The launcher's weight conversion: the first c_out rows converted, the padded rows zero (the memset).
fn host_weights(b: &NchwBoundary, w: &[f32]) -> Vec<u16> {
    let mut w16 = host_nchw_to_nhwc(b.w_dims(), w);
    assert_eq!(w16.len(), b.w_real_len());
    w16.resize(b.w_len(), 0);
    w16
}

fn check(shape: (usize, usize, usize, usize, usize, usize, usize, usize), seed: u64) {
    let (n, c_in, h, w, c_out, k, s, p) = shape;
    let g = Conv2dGeom::new(n, c_in, h, w, c_out, k, s, p);
    let what = format!("n{n} c{c_in} {h}x{w} -> c{c_out} k{k} s{s} p{p}");
    let b = NchwBoundary::new(&g).unwrap();
    assert_eq!((b.c_pad % 8, b.o_pad % 8), (0, 0), "{what}: padded channel counts");
    assert!(b.c_pad >= c_in && b.c_pad < c_in + 8 && b.o_pad >= c_out && b.o_pad < c_out + 8, "{what}");
    let bg = ConvBf16Geom::new(&b.padded).unwrap();
    assert_eq!((bg.x_len(), bg.w_len(), bg.y_len()), (b.x_len(), b.w_len(), b.y_len()), "{what}: buffer sizes");

    let mut rng = Rng::new(seed);
    let x = random(&mut rng, g.x_len(), 1.0);
    let wt = random(&mut rng, g.w_len(), 0.3);
    let bias = random(&mut rng, c_out, 0.5);
    let dy = random(&mut rng, g.y_len(), 1.0);
    let dw0 = random(&mut rng, g.w_len(), 1.0);
    let cpu = Cpu::with_precision(Precision::Bf16);

    // Forward: convert x and w, GEMM into NHWC f32 [n, ho, wo, O'], then NCHW with the bias (y poisoned with NaN).
    let x16 = host_nchw_to_nhwc(b.x_dims(), &x);
    let w16 = host_weights(&b, &wt);
    let y_nhwc = host_fwd(&bg, &x16, &w16);
    assert_eq!(y_nhwc.len(), b.y_len());
    let mut y = vec![f32::NAN; g.y_len()];
    host_nhwc_f32_to_nchw_with(b.y_dims(), &y_nhwc, Some(&bias), false, &mut y);
    let mut y_ref = vec![f32::NAN; g.y_len()];
    cpu.conv2d_fwd(&g, &x, &wt, Some(&bias), &mut y_ref);
    assert_close(&format!("{what}: y"), &y, &y_ref);

    // Backward: dy to NHWC bf16 with O' channels; dx through the transposed weights; dw into a zeroed workspace,
    // then added into the OIHW dw.
    let dy16 = host_nchw_to_nhwc(b.y_dims(), &dy);
    assert_eq!(dy16.len(), b.y_len());
    let dx_nhwc = host_dgrad(&bg, &dy16, &host_transpose(&bg, &w16));
    assert_eq!(dx_nhwc.len(), b.x_len());
    let mut dx = vec![f32::NAN; g.x_len()];
    host_nhwc_f32_to_nchw_with(b.x_dims(), &dx_nhwc, None, false, &mut dx);
    let dw_khwc = host_wgrad(&bg, &x16, &dy16);
    assert_eq!(dw_khwc.len(), b.w_len());
    let mut dw = dw0.clone();
    host_nhwc_f32_to_nchw_with(b.w_dims(), &dw_khwc[..b.w_real_len()], None, true, &mut dw);

    let (mut dx_ref, mut dw_ref) = (vec![f32::NAN; g.x_len()], dw0.clone());
    cpu.conv2d_bwd(&g, &x, &wt, &dy, Some(&mut dx_ref), &mut dw_ref, None);
    assert_close(&format!("{what}: dx"), &dx, &dx_ref);
    assert_close(&format!("{what}: dw"), &dw, &dw_ref);
    // The padded output rows of dw hold the zero dy channels' products: nothing (they are dropped, never read).
    assert!(dw_khwc[b.w_real_len()..].iter().all(|&v| v == 0.0), "{what}: padded dw rows");
}

#[test]
fn the_nchw_boundary_pipeline_equals_the_bf16_emulating_reference() {
    let shapes = [
        (2, 3, 17, 15, 10, 7, 2, 3),  // stem: c_in 3, c_out 10
        (2, 24, 9, 9, 20, 1, 2, 0),   // 1x1 s2 downsample
        (1, 5, 8, 8, 3, 3, 1, 1),     // c_out 3
        (2, 16, 10, 10, 17, 3, 2, 1), // c_out 17
        (2, 16, 7, 7, 16, 3, 1, 1),   // nothing padded
        (1, 9, 6, 5, 8, 3, 2, 0),     // c_in 9: padded to 16; no padding rows
    ];
    for (i, &shape) in shapes.iter().enumerate() {
        check(shape, 100 + i as u64);
    }
}

#[test]
fn the_conversion_dimensions_cover_each_tensor_once() {
    let g = Conv2dGeom::new(3, 5, 9, 7, 11, 3, 2, 1);
    let b = NchwBoundary::new(&g).unwrap();
    let elems = |d: [usize; 4]| (d[0] * d[1] * d[2], d[0] * d[2] * d[3]);
    // (NCHW side, NHWC side) of each conversion.
    assert_eq!(elems(b.x_dims()), (g.x_len(), b.x_len()));
    assert_eq!(elems(b.y_dims()), (g.y_len(), b.y_len()));
    assert_eq!(elems(b.w_dims()), (g.w_len(), b.w_real_len()));
    assert_eq!((b.c_pad, b.o_pad, b.padded.c_out), (8, 16, 16));
    assert_eq!(b.padded, Conv2dGeom { c_out: 16, ..g });
}

#[test]
fn the_accumulating_conversion_adds_and_the_writing_one_ignores_the_old_value() {
    let dims = [2, 3, 4, 8];
    let x: Vec<f32> = (0..2 * 4 * 8).map(|i| i as f32).collect();
    let bias = [10.0, 20.0, 30.0];
    let mut y = vec![f32::NAN; 2 * 3 * 4];
    host_nhwc_f32_to_nchw_with(dims, &x, Some(&bias), false, &mut y);
    // y[img, ch, p] = x[(img*4 + p)*8 + ch] + bias[ch]
    let (at_y, at_x) = (|img: usize, ch: usize, p: usize| (img * 3 + ch) * 4 + p, |img: usize, ch: usize, p: usize| (img * 4 + p) * 8 + ch);
    assert_eq!(y[at_y(0, 0, 0)], 10.0);
    assert_eq!(y[at_y(0, 1, 2)], at_x(0, 1, 2) as f32 + 20.0);
    assert_eq!(y[at_y(1, 2, 3)], at_x(1, 2, 3) as f32 + 30.0);
    assert!(y.iter().all(|v| v.is_finite()), "every element written");
    let mut acc = vec![1.0f32; 2 * 3 * 4];
    host_nhwc_f32_to_nchw_with(dims, &x, None, true, &mut acc);
    assert_eq!(acc[at_y(0, 1, 2)], at_x(0, 1, 2) as f32 + 1.0);
    assert_eq!(acc[at_y(1, 0, 1)], at_x(1, 0, 1) as f32 + 1.0);
}

#[test]
fn shapes_past_the_kernels_32_bit_indexing_are_rejected() {
    // 2^31 elements of x in the kernels' layout (c_in 8): an error, not a wrapped index.
    let g = Conv2dGeom::new(1 << 11, 8, 512, 256, 8, 1, 1, 0);
    let err = NchwBoundary::new(&g).unwrap_err().to_string();
    assert!(err.contains("32-bit"), "{err}");
}
