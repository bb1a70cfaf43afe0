// lars.cu: LARS (Barlow Twins' optimizer) over a table of arena segments, as src/backend/cpu/lars.rs:
//   d = grad + wd * p;  adapted segments: d *= trust, trust = (‖p‖ > 0 && ‖d‖ > 0) ? eta ‖p‖ / ‖d‖ : 1;
//   buf = has_momentum ? momentum * buf + d : d;  p -= lr * buf          (f32, no FMA: __fmul_rn / __fadd_rn)
// Three launches, deterministic (fixed chunks and fixed-order reductions, no atomics):
//   lars_norms:  one block per CHUNK of a segment (as grad_norm_partial): partial[2b] = Σ p², partial[2b + 1] = Σ d²
//                (f64; d rounded to f32 first, as the update uses it). Blocks of non-adapted segments write zeros.
//   lars_trust:  one block per SEGMENT: sums its chunks' partials in order; trust[s] = (float)(eta·‖p‖/‖d‖) or 1.
//   lars_step:   elementwise update, one pass over every segment (as sgd_step: prefix of lengths in smem, binary
//                search per element), reading trust[s].
// Segment table: LarsSegment[nsegs] in DEVICE memory; segments inside the arenas and not overlapping (the launcher
// checks). Workspaces: partial (2 · total chunks f64), trust (nsegs f32).
// Launch:
//   norms: block FG_BLOCK (256), grid = Σ ceil(len / chunk), DYNAMIC smem (nsegs + 1) * 8 B; static 256 B.
//   trust: block 256, grid nsegs, static smem 264 B.
//   step:  block 256, grid any (grid-stride over Σ len), DYNAMIC smem (nsegs + 1) * 8 B.  (nsegs <= 6143)
// Signatures:
//   lars_norms(const LarsSegment* segs, unsigned int nsegs, u64 chunk, const float* params, const float* grads,
//              double* partial)
//   lars_trust(const LarsSegment* segs, unsigned int nsegs, u64 chunk, float eta, const double* partial,
//              float* trust)
//   lars_step(const LarsSegment* segs, unsigned int nsegs, float momentum, const float* trust, float* params,
//             const float* grads, float* bufs)
#ifndef FG_COMMON_CUH
#include "common.cuh"
#endif

// Mirrors `geom::LarsSegment`: 8 + 8 + 4 + 4 + 4 + 4 = 32 bytes.
struct LarsSegment {
    unsigned long long offset, len;
    float lr, weight_decay;
    unsigned int has_momentum, adapt;
};
static_assert(sizeof(LarsSegment) == 32, "LarsSegment layout");

__device__ __forceinline__ u64 lars_chunks(u64 len, u64 chunk) { return (len + chunk - 1) / chunk; }

extern "C" __global__ void lars_norms(const LarsSegment* __restrict__ segs, unsigned int nsegs, u64 chunk,
                                      const float* __restrict__ params, const float* __restrict__ grads,
                                      double* __restrict__ partial) {
    extern __shared__ unsigned long long first_chunk[];  // nsegs + 1 entries
    __shared__ double scratch[32];
    if (threadIdx.x == 0) {
        first_chunk[0] = 0;
        for (u32 s = 0; s < nsegs; ++s) first_chunk[s + 1] = first_chunk[s] + lars_chunks(segs[s].len, chunk);
    }
    __syncthreads();
    const u64 b = blockIdx.x;
    u32 lo = 0, hi = nsegs;  // invariant first_chunk[lo] <= b < first_chunk[hi]
    while (hi - lo > 1) {
        const u32 mid = (lo + hi) >> 1;
        if (first_chunk[mid] <= b) lo = mid;
        else hi = mid;
    }
    const LarsSegment sg = segs[lo];
    double sp = 0.0, sd = 0.0;
    if (sg.adapt) {  // uniform across the block
        const u64 start = (b - first_chunk[lo]) * chunk;
        const u64 end = start + chunk < sg.len ? start + chunk : sg.len;
        for (u64 i = start + threadIdx.x; i < end; i += blockDim.x) {
            const float p = params[sg.offset + i];
            const float d = __fadd_rn(grads[sg.offset + i], __fmul_rn(sg.weight_decay, p));
            sp += (double)p * (double)p;
            sd += (double)d * (double)d;
        }
    }
    sp = fg_block_sum(sp, scratch);
    sd = fg_block_sum(sd, scratch);
    if (threadIdx.x == 0) {
        partial[2 * b] = sp;
        partial[2 * b + 1] = sd;
    }
}

extern "C" __global__ void lars_trust(const LarsSegment* __restrict__ segs, unsigned int nsegs, u64 chunk, float eta,
                                      const double* __restrict__ partial, float* __restrict__ trust) {
    __shared__ double scratch[32];
    __shared__ unsigned long long first;
    const u32 s = blockIdx.x;
    if (s >= nsegs) return;
    if (threadIdx.x == 0) {
        u64 c = 0;
        for (u32 t = 0; t < s; ++t) c += lars_chunks(segs[t].len, chunk);
        first = c;
    }
    __syncthreads();
    const u64 count = lars_chunks(segs[s].len, chunk);
    double sp = 0.0, sd = 0.0;
    for (u64 c = threadIdx.x; c < count; c += blockDim.x) {
        sp += partial[2 * (first + c)];
        sd += partial[2 * (first + c) + 1];
    }
    sp = fg_block_sum(sp, scratch);
    sd = fg_block_sum(sd, scratch);
    if (threadIdx.x == 0) {
        const double pn = sqrt(sp), dn = sqrt(sd);
        trust[s] = (segs[s].adapt && pn > 0.0 && dn > 0.0) ? (float)((double)eta * pn / dn) : 1.0f;
    }
}

extern "C" __global__ void lars_step(const LarsSegment* __restrict__ segs, unsigned int nsegs, float momentum,
                                     const float* __restrict__ trust, float* __restrict__ params,
                                     const float* __restrict__ grads, float* __restrict__ bufs) {
    extern __shared__ unsigned long long prefix[];  // nsegs + 1 entries: exclusive prefix of lengths
    for (u32 s = threadIdx.x; s < nsegs; s += blockDim.x) prefix[s + 1] = segs[s].len;
    __syncthreads();
    if (threadIdx.x == 0) {
        prefix[0] = 0;
        for (u32 s = 0; s < nsegs; ++s) prefix[s + 1] += prefix[s];
    }
    __syncthreads();
    const u64 total = prefix[nsegs];
    FG_GRID_STRIDE(v, total) {
        u32 lo = 0, hi = nsegs;  // invariant prefix[lo] <= v < prefix[hi]
        while (hi - lo > 1) {
            const u32 mid = (lo + hi) >> 1;
            if (prefix[mid] <= v) lo = mid;
            else hi = mid;
        }
        const LarsSegment sg = segs[lo];
        const u64 i = sg.offset + (v - prefix[lo]);
        const float p = params[i];
        float d = __fadd_rn(grads[i], __fmul_rn(sg.weight_decay, p));
        if (sg.adapt) d = __fmul_rn(d, trust[lo]);
        const float b = sg.has_momentum ? __fadd_rn(__fmul_rn(momentum, bufs[i]), d) : d;
        bufs[i] = b;
        params[i] = __fsub_rn(p, __fmul_rn(sg.lr, b));
    }
}
