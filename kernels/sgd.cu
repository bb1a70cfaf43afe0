// sgd.cu: SGD with momentum and weight decay over every segment of the parameter arena in ONE launch, PyTorch
// semantics exactly as src/backend/cpu/sgd.rs (f32, no FMA contraction: __fmul_rn / __fadd_rn):
//   g = grad + wd * p;  buf = has_momentum ? momentum * buf + g : g;  p -= lr * buf
// The segment table (SgdSegment[nsegs]) lives in DEVICE memory (upload it once; re-upload when has_momentum
// flips after the first step). The kernel flattens the segments in TABLE order into a virtual range [0, total),
// total = sum of len: each block loads the lengths, builds their exclusive prefix in shared memory, and each element
// finds its segment by binary search. Segments must not overlap (the CPU asserts it); gaps are left untouched.
// Launch: block FG_BLOCK (256), grid any (grid-stride over total; e.g. min(ceil(total/256), 8 * SMs)),
//   DYNAMIC smem = (nsegs + 1) * 8 bytes (<= 48 KB without opting in: nsegs <= 6143).
// Signature:
//   sgd_step(const SgdSegment* segs, unsigned int nsegs, float momentum, float* params, const float* grads,
//            float* bufs)
#ifndef FG_COMMON_CUH
#include "common.cuh"
#endif

// Mirrors `geom::SgdSegment`: 8 + 8 + 4 + 4 + 4 = 28 bytes, padded to 32 (alignment 8) on both sides.
struct SgdSegment {
    unsigned long long offset;
    unsigned long long len;
    float lr;
    float weight_decay;
    unsigned int has_momentum;
};
static_assert(sizeof(SgdSegment) == 32, "SgdSegment layout");
static_assert(alignof(SgdSegment) == 8, "SgdSegment alignment");

extern "C" __global__ void sgd_step(const SgdSegment* __restrict__ segs, unsigned int nsegs, float momentum,
                                    float* __restrict__ params, const float* __restrict__ grads,
                                    float* __restrict__ bufs) {
    extern __shared__ unsigned long long prefix[];  // nsegs + 1 entries
    for (u32 s = threadIdx.x; s < nsegs; s += blockDim.x) prefix[s + 1] = segs[s].len;
    __syncthreads();
    if (threadIdx.x == 0) {
        prefix[0] = 0;
        for (u32 s = 0; s < nsegs; ++s) prefix[s + 1] += prefix[s];
    }
    __syncthreads();
    const u64 total = prefix[nsegs];
    FG_GRID_STRIDE(v, total) {
        // largest s with prefix[s] <= v (then v < prefix[s + 1] because v < total)
        u32 lo = 0, hi = nsegs;  // invariant: prefix[lo] <= v < prefix[hi]
        while (hi - lo > 1) {
            const u32 mid = (lo + hi) >> 1;
            if (prefix[mid] <= v) lo = mid;
            else hi = mid;
        }
        const SgdSegment sg = segs[lo];
        const u64 i = sg.offset + (v - prefix[lo]);
        const float p = params[i];
        const float gr = __fadd_rn(grads[i], __fmul_rn(sg.weight_decay, p));
        const float b = sg.has_momentum ? __fadd_rn(__fmul_rn(momentum, bufs[i]), gr) : gr;
        bufs[i] = b;
        params[i] = __fsub_rn(p, __fmul_rn(sg.lr, b));
    }
}
