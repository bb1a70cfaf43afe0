//! The element type the CPU backend computes in: f32 (the reference, bit-compatible with what it always was) or
//! f64 (for parity and finite-difference checks that f32 rounding would blur). Every op is written once, generic
//! over [`Element`]; the two impls below are the only per-type code.

use std::fmt::Debug;
use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub, SubAssign};

use crate::tensor::DType;

/// A floating-point element: the arithmetic the ops use, lossless-enough conversions to and from the f32 host
/// data and the f64 accumulators, and the few `std` float functions the ops call.
pub trait Element:
    Copy
    + Send
    + Sync
    + Debug
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + 'static
{
    const ZERO: Self;
    const ONE: Self;
    const NAN: Self;
    const NEG_INFINITY: Self;
    /// The buffer element type this is, in the backend's [`crate::tensor::Format`].
    const DTYPE: DType;
    /// `"f32"` / `"f64"`, for the device name and error messages.
    const NAME: &'static str;

    fn from_f32(v: f32) -> Self;
    /// Rounds to nearest when `Self` is narrower.
    fn from_f64(v: f64) -> Self;
    /// Rounds to nearest when `Self` is wider.
    fn to_f32(self) -> f32;
    fn to_f64(self) -> f64;
    /// The nearest bf16 value (ties to even, one rounding from `Self`), as `Self`: the operand rounding of
    /// [`crate::backend::Precision::Bf16`].
    fn round_bf16(self) -> Self;
    fn exp(self) -> Self;
    fn exp_m1(self) -> Self;
    fn is_nan(self) -> bool;
}

/// `v` rounded to the nearest bf16 (ties to even) in one step. `half`'s `bf16::from_f64` goes through f32, which
/// rounds twice (1 + 2^-8 + 2^-40 would become the tie 1 + 2^-8 and then 1), so f64 drops its low 45 mantissa bits
/// here itself. Outside f32's normal range (bf16 subnormals, overflow), where that shortcut does not hold, `half`
/// decides; no value the engine computes with lives there.
fn round_f64_to_bf16(v: f64) -> f64 {
    let magnitude = v.abs();
    if !(f32::MIN_POSITIVE as f64..=f32::MAX as f64).contains(&magnitude) {
        return half::bf16::from_f64(v).to_f64();
    }
    const DROPPED: u32 = 52 - 7;
    let bits = v.to_bits();
    let rounded = bits + ((1u64 << (DROPPED - 1)) - 1) + ((bits >> DROPPED) & 1);
    f64::from_bits(rounded & !((1u64 << DROPPED) - 1))
}

fn round_f32_to_bf16(v: f32) -> f32 {
    half::bf16::from_f32(v).to_f32()
}

macro_rules! impl_element {
    ($t:ident, $dtype:expr, $round_bf16:ident) => {
        impl Element for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NAN: Self = $t::NAN;
            const NEG_INFINITY: Self = $t::NEG_INFINITY;
            const DTYPE: DType = $dtype;
            const NAME: &'static str = stringify!($t);

            fn from_f32(v: f32) -> Self {
                v as $t
            }
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn to_f32(self) -> f32 {
                self as f32
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn round_bf16(self) -> Self {
                $round_bf16(self)
            }
            fn exp(self) -> Self {
                $t::exp(self)
            }
            fn exp_m1(self) -> Self {
                $t::exp_m1(self)
            }
            fn is_nan(self) -> bool {
                $t::is_nan(self)
            }
        }
    };
}

impl_element!(f32, DType::F32, round_f32_to_bf16);
impl_element!(f64, DType::F64, round_f64_to_bf16);
