// relu.cu: ReLU forward and backward (backward from the forward OUTPUT y), as src/backend/cpu/relu.rs.
//   fwd: y = (x > 0 || isnan(x)) ? x : 0          (NaN propagates)
//   bwd: dx = (y > 0) ? dy : 0                    (written, not accumulated)
// Launch (both): block FG_BLOCK (256), grid any (grid-stride), no smem.
// Signatures:
//   relu_fwd(u64 n, const float* x, float* y)
//   relu_bwd(u64 n, const float* y, const float* dy, float* dx)
#ifndef FG_COMMON_CUH
#include "common.cuh"
#endif

extern "C" __global__ void relu_fwd(u64 n, const float* __restrict__ x, float* __restrict__ y) {
    FG_GRID_STRIDE(i, n) {
        const float v = x[i];
        y[i] = (v > 0.0f || fg_isnan(v)) ? v : 0.0f;
    }
}

extern "C" __global__ void relu_bwd(u64 n, const float* __restrict__ y, const float* __restrict__ dy,
                                    float* __restrict__ dx) {
    FG_GRID_STRIDE(i, n) dx[i] = (y[i] > 0.0f) ? dy[i] : 0.0f;
}
