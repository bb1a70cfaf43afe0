// add.cu: residual add `y = a + b` (no backward: it is the identity for both inputs; the same kernel sums two
// gradients where a residual branch starts). y may alias a or b (each element is read before it is written by the
// same thread), so no __restrict__ here.
// Launch: block FG_BLOCK (256), grid any (grid-stride), no smem.
// Signature: add_fwd(u64 n, const float* a, const float* b, float* y)
#ifndef FG_COMMON_CUH
#include "common.cuh"
#endif

extern "C" __global__ void add_fwd(u64 n, const float* a, const float* b, float* y) {
    FG_GRID_STRIDE(i, n) y[i] = a[i] + b[i];
}
