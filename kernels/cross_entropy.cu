// cross_entropy.cu: softmax cross-entropy, mean over the batch; logits [n, k], labels `const unsigned int*` [n]
// (device copy of the host labels), as src/backend/cpu/cross_entropy.rs. Computed in double like the CPU reference.
//   cross_entropy_fwd:      ONE WARP PER ROW: max, lse = max + log(sum exp(z - max)), probs = exp(z - lse),
//                           row_loss[i] = lse - z[label] (double workspace of n entries). A label >= k gives a
//                           NaN row loss (the CPU panics on it; the launcher should validate labels on the host).
//   cross_entropy_fwd_mean: ONE BLOCK: loss[0] = (fixed-order sum of row_loss) / n; n == 0 -> NaN.
//   cross_entropy_bwd:      dlogits[i, j] = (probs[i, j] - (j == label[i])) * (dloss / n)   (WRITTEN)
// Launch:
//   fwd: blockDim.x multiple of 32 (FG_BLOCK = 256 -> 8 rows / block), grid any (grid-stride over rows); no smem.
//   fwd_mean: grid (1, 1, 1), block FG_BLOCK (256; any multiple of 32 <= 1024); static smem 256 B.
//   bwd: block FG_BLOCK, grid any (grid-stride over n*k); no smem. Skip the launch when n == 0.
// Signatures:
//   cross_entropy_fwd(CrossEntropyGeom g, const float* logits, const unsigned int* labels, float* probs,
//                     double* row_loss)
//   cross_entropy_fwd_mean(CrossEntropyGeom g, const double* row_loss, float* loss)
//   cross_entropy_bwd(CrossEntropyGeom g, const float* probs, const unsigned int* labels, float dloss,
//                     float* dlogits)
#ifndef FG_COMMON_CUH
#include "common.cuh"
#endif

// Mirrors `geom::CrossEntropyGeom`.
struct CrossEntropyGeom {
    unsigned long long n, k;
};
static_assert(sizeof(CrossEntropyGeom) == 16, "CrossEntropyGeom layout");

extern "C" __global__ void cross_entropy_fwd(CrossEntropyGeom g, const float* __restrict__ logits,
                                             const unsigned int* __restrict__ labels, float* __restrict__ probs,
                                             double* __restrict__ row_loss) {
    const u32 lane = threadIdx.x & 31u;
    const u64 wpb = blockDim.x >> 5;
    for (u64 row = (u64)blockIdx.x * wpb + (threadIdx.x >> 5); row < g.n; row += (u64)gridDim.x * wpb) {
        const float* z = logits + row * g.k;
        float* p = probs + row * g.k;
        double mx = -__longlong_as_double(0x7ff0000000000000ll);  // -inf
        for (u64 j = lane; j < g.k; j += 32) mx = fg_max_nan(mx, (double)z[j]);
        mx = fg_warp_max_nan(mx);
        double s = 0.0;
        for (u64 j = lane; j < g.k; j += 32) s += exp((double)z[j] - mx);
        s = fg_warp_sum(s);
        const double lse = mx + log(s);
        for (u64 j = lane; j < g.k; j += 32) p[j] = (float)exp((double)z[j] - lse);
        if (lane == 0) {
            const u32 label = labels[row];
            row_loss[row] = label < g.k ? lse - (double)z[label] : __longlong_as_double(0x7ff8000000000000ll);
        }
    }
}

extern "C" __global__ void cross_entropy_fwd_mean(CrossEntropyGeom g, const double* __restrict__ row_loss,
                                                  float* __restrict__ loss) {
    __shared__ double scratch[32];
    double s = 0.0;
    for (u64 i = threadIdx.x; i < g.n; i += blockDim.x) s += row_loss[i];
    s = fg_block_sum(s, scratch);
    if (threadIdx.x == 0) loss[0] = g.n == 0 ? fg_nan() : (float)(s / (double)g.n);
}

extern "C" __global__ void cross_entropy_bwd(CrossEntropyGeom g, const float* __restrict__ probs,
                                             const unsigned int* __restrict__ labels, float dloss,
                                             float* __restrict__ dlogits) {
    const u64 total = g.n * g.k;
    const double scale = (double)dloss / (double)g.n;
    FG_GRID_STRIDE(e, total) {
        const u64 i = fg_div(e, g.k), j = e - i * g.k;
        const double t = (j == (u64)labels[i]) ? 1.0 : 0.0;
        dlogits[e] = (float)(((double)probs[e] - t) * scale);
    }
}
