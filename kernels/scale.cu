// scale.cu: `y[i] *= alpha` for i < n (the gradient arena times the gradient-clipping factor).
// Launch: block FG_BLOCK (256), grid any (grid-stride), no smem.
// Signature: scale_fwd(u64 n, float alpha, float* y)
#ifndef FG_COMMON_CUH
#include "common.cuh"
#endif

extern "C" __global__ void scale_fwd(u64 n, float alpha, float* __restrict__ y) {
    FG_GRID_STRIDE(i, n) y[i] = __fmul_rn(y[i], alpha);
}
