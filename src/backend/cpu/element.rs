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
    fn exp(self) -> Self;
    fn exp_m1(self) -> Self;
    fn is_nan(self) -> bool;
}

macro_rules! impl_element {
    ($t:ident, $dtype:expr) => {
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

impl_element!(f32, DType::F32);
impl_element!(f64, DType::F64);
