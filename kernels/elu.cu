// elu.cu: ELU forward and backward (backward from the forward INPUT x), as src/backend/cpu/elu.rs.
//   fwd: y = x > 0 ? x : alpha * expm1(x)
//   bwd: dx = x > 0 ? dy : (dy * alpha) * exp(x)   (written, not accumulated)
// Multiplications use __fmul_rn so no FMA contraction changes the rounding relative to the CPU.
// Launch (both): block FG_BLOCK (256), grid any (grid-stride), no smem.
// Signatures:
//   elu_fwd(u64 n, float alpha, const float* x, float* y)
//   elu_bwd(u64 n, float alpha, const float* x, const float* dy, float* dx)
#ifndef FG_COMMON_CUH
#include "common.cuh"
#endif

extern "C" __global__ void elu_fwd(u64 n, float alpha, const float* __restrict__ x, float* __restrict__ y) {
    FG_GRID_STRIDE(i, n) {
        const float v = x[i];
        y[i] = v > 0.0f ? v : __fmul_rn(alpha, expm1f(v));
    }
}

extern "C" __global__ void elu_bwd(u64 n, float alpha, const float* __restrict__ x, const float* __restrict__ dy,
                                   float* __restrict__ dx) {
    FG_GRID_STRIDE(i, n) {
        const float v = x[i], d = dy[i];
        dx[i] = v > 0.0f ? d : __fmul_rn(__fmul_rn(d, alpha), expf(v));
    }
}
