//! `--precision bf16` on the CPU reference: what the emulation rounds, and what it leaves in f32.

use fgssl::backend::cpu::{Cpu, Cpu64, Element};
use fgssl::backend::geom::Conv2dGeom;
use fgssl::backend::{Backend, Precision};
use fgssl::rng::Rng;

fn random(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.normal()).collect()
}

fn rounded(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| half::bf16::from_f32(x).to_f32()).collect()
}

#[test]
fn round_bf16_is_one_rounding_to_nearest_even() {
    // 1 + 2^-8 is halfway between the bf16 neighbours 1 and 1 + 2^-7: ties go to the even one, 1.
    assert_eq!((1.0f32 + 2f32.powi(-8)).round_bf16(), 1.0);
    assert_eq!((1.0f32 + 3.0 * 2f32.powi(-8)).round_bf16(), 1.0 + 2f32.powi(-6));
    // Just above the tie in f64: rounding through f32 would land on the tie and go to 1; one rounding goes up.
    let above_tie = 1.0f64 + 2f64.powi(-8) + 2f64.powi(-40);
    assert_eq!(above_tie.round_bf16(), 1.0 + 2f64.powi(-7));
    assert_eq!((-2.5f32).round_bf16(), -2.5);
}

fn geometry() -> Conv2dGeom {
    Conv2dGeom::new(2, 5, 7, 6, 4, 3, 2, 1)
}

#[test]
fn bf16_convolution_multiplies_rounded_operands_and_adds_the_bias_in_f32() {
    let g = geometry();
    let mut rng = Rng::new(11);
    let (x, w, bias) = (random(&mut rng, g.x_len()), random(&mut rng, g.w_len()), random(&mut rng, g.c_out));
    let (fp32, bf16) = (Cpu::new(), Cpu::with_precision(Precision::Bf16));
    assert_eq!(bf16.precision(), Precision::Bf16);

    let mut y_bf16 = vec![f32::NAN; g.y_len()];
    bf16.conv2d_fwd(&g, &x, &w, Some(&bias), &mut y_bf16);
    let mut y_rounded_inputs = vec![f32::NAN; g.y_len()];
    fp32.conv2d_fwd(&g, &rounded(&x), &rounded(&w), Some(&bias), &mut y_rounded_inputs);
    assert_eq!(y_bf16, y_rounded_inputs);

    let mut y_fp32 = vec![f32::NAN; g.y_len()];
    fp32.conv2d_fwd(&g, &x, &w, Some(&bias), &mut y_fp32);
    let max_diff = y_fp32.iter().zip(&y_bf16).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(max_diff > 1e-4, "bf16 rounding must change the result of random operands (max diff {max_diff})");
    assert!(max_diff < 0.1, "but only by bf16's rounding (max diff {max_diff})");
}

#[test]
fn bf16_convolution_gradients_round_x_w_and_dy_but_not_the_bias_gradient() {
    let g = geometry();
    let mut rng = Rng::new(12);
    let (x, w, dy) = (random(&mut rng, g.x_len()), random(&mut rng, g.w_len()), random(&mut rng, g.y_len()));
    let start_dw = random(&mut rng, g.w_len());
    let start_db = random(&mut rng, g.c_out);
    let run = |b: &Cpu, x: &[f32], w: &[f32], dy: &[f32]| {
        let (mut dx, mut dw, mut db) = (vec![f32::NAN; g.x_len()], start_dw.clone(), start_db.clone());
        b.conv2d_bwd(&g, x, w, dy, Some(&mut dx), &mut dw, Some(&mut db));
        (dx, dw, db)
    };
    let (dx16, dw16, db16) = run(&Cpu::with_precision(Precision::Bf16), &x, &w, &dy);
    let (dx_r, dw_r, _) = run(&Cpu::new(), &rounded(&x), &rounded(&w), &rounded(&dy));
    let (_, _, db32) = run(&Cpu::new(), &x, &w, &dy);
    assert_eq!(dx16, dx_r);
    assert_eq!(dw16, dw_r);
    assert_eq!(db16, db32);
}

#[test]
fn the_f64_reference_emulates_bf16_too() {
    let g = geometry();
    let mut rng = Rng::new(13);
    let (x, w) = (random(&mut rng, g.x_len()), random(&mut rng, g.w_len()));
    let to64 = |v: &[f32]| v.iter().map(|&e| e as f64).collect::<Vec<f64>>();
    let mut y64 = vec![f64::NAN; g.y_len()];
    Cpu64::with_precision(Precision::Bf16).conv2d_fwd(&g, &to64(&x), &to64(&w), None, &mut y64);
    let mut y32 = vec![f32::NAN; g.y_len()];
    Cpu::with_precision(Precision::Bf16).conv2d_fwd(&g, &x, &w, None, &mut y32);
    // The same bf16 operands (exact in both), summed in f64 and in f32.
    let max_diff = y64.iter().zip(&y32).map(|(a, &b)| (a - b as f64).abs()).fold(0.0, f64::max);
    assert!(max_diff < 1e-5, "f64 and f32 bf16 emulation differ by {max_diff}");
}

#[test]
fn precision_names_parse_and_print() {
    for name in Precision::NAMES {
        assert_eq!(name.parse::<Precision>().unwrap().to_string(), name);
    }
    let err = "fp16".parse::<Precision>().unwrap_err();
    assert!(err.contains("fp16") && err.contains("bf16"), "{err}");
}

#[test]
fn f64_and_f32_round_alike_on_f32_values() {
    let mut rng = Rng::new(14);
    for _ in 0..10_000 {
        let v = rng.normal() * 2f32.powi((rng.normal() * 20.0) as i32);
        assert_eq!((v as f64).round_bf16(), v.round_bf16() as f64, "{v:e}");
    }
    for tie in [1.0f32 + 2f32.powi(-8), -(3.0 + 2f32.powi(-7)), 1.5 * 2f32.powi(-100)] {
        assert_eq!((tie as f64).round_bf16(), tie.round_bf16() as f64, "{tie:e}");
    }
}
