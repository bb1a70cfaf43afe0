// fill.cu: `y[i] = value` for i < n.
// Launch: block FG_BLOCK (256) threads, grid any (e.g. min(ceil(n/256), 4 * SMs * 8)); grid-stride loop, no smem.
// Signature: fill_fwd(u64 n, float value, float* y)
#ifndef FG_COMMON_CUH
#include "common.cuh"
#endif

extern "C" __global__ void fill_fwd(u64 n, float value, float* __restrict__ y) {
    FG_GRID_STRIDE(i, n) y[i] = value;
}
