// adamw.cu: AdamW with PyTorch semantics (decoupled weight decay) over every segment of the parameter arena in
// ONE launch, as src/backend/cpu/adamw.rs (f32, no FMA contraction: __fmul_rn / __fadd_rn / __fdiv_rn):
//   p *= (float)(1 − lr·wd);  m = β1 m + (1 − β1) g;  v = β2 v + ((1 − β2) g) g;
//   p −= (step_size · m) / (sqrt(v) / bc2_sqrt + eps)
// step_size = lr / (1 − β1^t) and bc2_sqrt = sqrt(1 − β2^t) come per segment (the tensor's own step count t).
// Segment table: AdamwSegment[nsegs] in DEVICE memory (as sgd.cu: prefix of lengths in shared memory, binary
// search per element); segments must not overlap (the launcher checks).
// Launch: block FG_BLOCK (256), grid any (grid-stride over Σ len), DYNAMIC smem (nsegs + 1) * 8 bytes (nsegs <= 6143).
// Signature:
//   adamw_step(const AdamwSegment* segs, unsigned int nsegs, float beta1, float beta2, float eps, float* params,
//              const float* grads, float* exp_avg, float* exp_avg_sq)
#ifndef FG_COMMON_CUH
#include "common.cuh"
#endif

// Mirrors `geom::AdamwSegment`: 8 + 8 + 4 · 4 = 32 bytes.
struct AdamwSegment {
    unsigned long long offset, len;
    float lr, weight_decay, step_size, bias_correction2_sqrt;
};
static_assert(sizeof(AdamwSegment) == 32, "AdamwSegment layout");

extern "C" __global__ void adamw_step(const AdamwSegment* __restrict__ segs, unsigned int nsegs, float beta1,
                                      float beta2, float eps, float* __restrict__ params,
                                      const float* __restrict__ grads, float* __restrict__ exp_avg,
                                      float* __restrict__ exp_avg_sq) {
    extern __shared__ unsigned long long prefix[];  // nsegs + 1 entries
    for (u32 s = threadIdx.x; s < nsegs; s += blockDim.x) prefix[s + 1] = segs[s].len;
    __syncthreads();
    if (threadIdx.x == 0) {
        prefix[0] = 0;
        for (u32 s = 0; s < nsegs; ++s) prefix[s + 1] += prefix[s];
    }
    __syncthreads();
    const float one_b1 = 1.0f - beta1, one_b2 = 1.0f - beta2;
    const u64 total = prefix[nsegs];
    FG_GRID_STRIDE(v, total) {
        u32 lo = 0, hi = nsegs;  // invariant prefix[lo] <= v < prefix[hi]
        while (hi - lo > 1) {
            const u32 mid = (lo + hi) >> 1;
            if (prefix[mid] <= v) lo = mid;
            else hi = mid;
        }
        const AdamwSegment sg = segs[lo];
        const u64 i = sg.offset + (v - prefix[lo]);
        const float g = grads[i];
        const float m = __fadd_rn(__fmul_rn(beta1, exp_avg[i]), __fmul_rn(one_b1, g));
        const float s = __fadd_rn(__fmul_rn(beta2, exp_avg_sq[i]), __fmul_rn(__fmul_rn(one_b2, g), g));
        exp_avg[i] = m;
        exp_avg_sq[i] = s;
        const float decay = (float)(1.0 - (double)sg.lr * (double)sg.weight_decay);
        const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(s), sg.bias_correction2_sqrt), eps);
        params[i] = __fsub_rn(__fmul_rn(params[i], decay), __fdiv_rn(__fmul_rn(sg.step_size, m), denom));
    }
}
