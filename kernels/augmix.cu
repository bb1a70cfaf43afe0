// augmix.cu: AugMix (torchvision's `AugMix` on uint8) inside augment_fwd, between augment_resample and
// augment_mean, for the samples whose SampleAug.augmix.on is set; the reference is src/backend/cpu/augmix.rs
// (semantics of every op there and in src/augment/augmix.rs). All images here are planar u8 [3, out, out].
//
// Stages (launched by src/backend/cuda/launch/augmix.rs, on the backend's stream):
//   augmix_quantize: one thread per element: orig = u8(round half even(clamp(a, 0, 255))).
//   for d in 0 .. max chain depth of the batch:
//     augmix_tables: one block per (sample, chain, channel) whose op d is a per-value op (Posterize, Solarize,
//                    AutoContrast, Equalize, Brightness, Contrast): its 256-entry table, from the channel's
//                    histogram / min / max or the image's grey mean (integer shared-memory atomics and an integer
//                    block sum: exact, so deterministic).
//     augmix_apply:  one thread per (sample, chain, pixel) whose chain has an op d: that op on the 3 channels of
//                    src (orig for d = 0, else the buffer written at d - 1) into dst (buffers alternate).
//   augmix_mix:      one thread per element: a = trunc(orig_weight * orig + sum_i w_i * chain_i), in chain order.
// Bit-exactness: f32 work uses __fadd_rn / __fmul_rn / __fsub_rn / __fdiv_rn (never contracted into FMA) in the
// CPU reference's order; everything else is integer.
// Launch: block FG_BLOCK (256, a multiple of 32, needed by the block reductions of augmix_tables), grid-stride
// grids, static smem only (augmix_tables: 1 KiB histogram + 264 B). Workspaces: orig n*3*out*out u8; two chain
// buffers n*3*3*out*out u8 each ([n, chain, 3, out, out]); tables n*3*3*256 u8 ([n, chain, channel, 256]).
// Signatures:
//   augmix_quantize(AugmentGeom g, const SampleAug* params, const float* a, u8* orig)
//   augmix_tables(AugmentGeom g, const SampleAug* params, u32 d, const u8* src, u64 src_sample_stride,
//                 u64 src_chain_stride, u8* tables)
//   augmix_apply(AugmentGeom g, const SampleAug* params, u32 d, const u8* src, u64 src_sample_stride,
//                u64 src_chain_stride, const u8* tables, u8* dst)
//   augmix_mix(AugmentGeom g, const SampleAug* params, const u8* orig, const u8* buf0, const u8* buf1, float* a)
#ifndef FG_COMMON_CUH
#include "common.cuh"
#endif
#include "augment_params.cuh"

typedef unsigned char u8;

// Op kinds (src/augment/augmix.rs `kind`).
#define AM_SHEAR_X 0
#define AM_ROTATE 4
#define AM_POSTERIZE 5
#define AM_SOLARIZE 6
#define AM_AUTO_CONTRAST 7
#define AM_EQUALIZE 8
#define AM_BRIGHTNESS 9
#define AM_COLOR 10
#define AM_CONTRAST 11
#define AM_SHARPNESS 12

__device__ __forceinline__ float am_add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ float am_sub(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ float am_mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ float am_div(float a, float b) { return __fdiv_rn(a, b); }
// trunc(clamp(v, 0, 255)) as torch's `.clamp(0, 255).to(uint8)`.
__device__ __forceinline__ u8 am_trunc_u8(float v) { return (u8)(u32)fminf(fmaxf(v, 0.0f), 255.0f); }

__device__ __forceinline__ bool am_is_table_op(u32 k) {
    return (k >= AM_POSTERIZE && k <= AM_BRIGHTNESS) || k == AM_CONTRAST;
}

// torchvision's rgb_to_grayscale on uint8: trunc((0.2989 r + 0.587 g) + 0.114 b).
__device__ __forceinline__ u32 am_grey(u32 r, u32 g, u32 b) {
    return (u32)am_add(am_add(am_mul(0.2989f, (float)r), am_mul(0.587f, (float)g)), am_mul(0.114f, (float)b));
}

// _blend on uint8.
__device__ __forceinline__ u8 am_blend(const AugmixOp& op, u32 x, float other) {
    return am_trunc_u8(am_add(am_mul(op.ratio, (float)x), am_mul(op.complement, other)));
}

extern "C" __global__ void augmix_quantize(AugmentGeom g, const SampleAug* __restrict__ params, const float* __restrict__ a,
                                           u8* __restrict__ orig) {
    const u64 img = 3 * g.out * g.out, total = g.n * img;
    FG_GRID_STRIDE(e, total) {
        if (!params[fg_div(e, img)].augmix.on) continue;
        orig[e] = (u8)rintf(fminf(fmaxf(a[e], 0.0f), 255.0f));
    }
}

extern "C" __global__ void augmix_tables(AugmentGeom g, const SampleAug* __restrict__ params, u32 d, const u8* __restrict__ src,
                                         u64 src_sample_stride, u64 src_chain_stride, u8* __restrict__ tables) {
    __shared__ u32 hist[256];
    __shared__ u32 lo, hi;
    __shared__ unsigned long long partial[32];
    __shared__ float mean;
    const u64 plane = g.out * g.out, jobs = g.n * AUGMIX_MAX_WIDTH * 3;
    for (u64 job = blockIdx.x; job < jobs; job += gridDim.x) {
        const u64 i = fg_div(job, AUGMIX_MAX_WIDTH * 3), rest = job - i * AUGMIX_MAX_WIDTH * 3;
        const u64 chain = fg_div(rest, 3), c = rest - chain * 3;
        const AugmixParams& p = params[i].augmix;
        // Uniform per block: skip jobs without a per-value op at depth d.
        if (!p.on || p.depth[chain] <= d || !am_is_table_op(p.ops[chain][d].kind)) continue;
        const AugmixOp& op = p.ops[chain][d];
        const u8* image = src + i * src_sample_stride + chain * src_chain_stride;
        const u8* chan = image + c * plane;
        __syncthreads();  // the shared state may still be read for the previous job
        for (u32 v = threadIdx.x; v < 256; v += blockDim.x) hist[v] = 0;
        if (threadIdx.x == 0) {
            lo = 255;
            hi = 0;
        }
        __syncthreads();
        if (op.kind == AM_AUTO_CONTRAST || op.kind == AM_EQUALIZE) {
            for (u64 k = threadIdx.x; k < plane; k += blockDim.x) {
                const u32 v = chan[k];
                if (op.kind == AM_EQUALIZE) atomicAdd(&hist[v], 1u);
                else {
                    atomicMin(&lo, v);
                    atomicMax(&hi, v);
                }
            }
        } else if (op.kind == AM_CONTRAST) {
            unsigned long long s = 0;
            for (u64 k = threadIdx.x; k < plane; k += blockDim.x) s += am_grey(image[k], image[plane + k], image[2 * plane + k]);
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
            if ((threadIdx.x & 31u) == 0) partial[threadIdx.x >> 5] = s;
            __syncthreads();
            if (threadIdx.x == 0) {
                unsigned long long t = 0;
                for (u32 w = 0; w < (blockDim.x >> 5); ++w) t += partial[w];
                mean = am_div((float)t, (float)plane);
            }
        }
        __syncthreads();
        if (op.kind == AM_EQUALIZE) {
            // torchvision's _scale_channel, serial over 256 bins (cheap next to the histogram).
            if (threadIdx.x == 0) {
                int last = 255;
                while (last > 0 && hist[last] == 0) --last;
                unsigned long long before = 0;
                for (int v = 0; v < last; ++v) before += hist[v];
                const unsigned long long step = before / 255;
                u8* t = tables + job * 256;
                if (step == 0) {
                    for (u32 v = 0; v < 256; ++v) t[v] = (u8)v;
                } else {
                    unsigned long long cum = 0;
                    t[0] = 0;
                    for (u32 v = 1; v < 256; ++v) {
                        cum += hist[v - 1];
                        const unsigned long long q = (cum + step / 2) / step;
                        t[v] = (u8)(q < 255 ? q : 255);
                    }
                }
            }
            continue;
        }
        for (u32 v = threadIdx.x; v < 256; v += blockDim.x) {
            u8 out;
            if (op.kind == AM_POSTERIZE) {
                const u32 bits = op.bits < 8 ? op.bits : 8;
                out = (u8)(v & ((0xFFu << (8 - bits)) & 0xFFu));
            } else if (op.kind == AM_SOLARIZE) {
                out = (float)v >= op.ratio ? (u8)(255 - v) : (u8)v;
            } else if (op.kind == AM_BRIGHTNESS) {
                out = am_blend(op, v, 0.0f);
            } else if (op.kind == AM_CONTRAST) {
                out = am_blend(op, v, mean);
            } else {  // AutoContrast
                out = (u8)v;
                if (hi > lo) {
                    // torch evaluates `255 / t` as `t.reciprocal() * 255`: two roundings.
                    const float scale = am_mul(am_div(1.0f, am_sub((float)hi, (float)lo)), 255.0f);
                    out = am_trunc_u8(am_mul(am_sub((float)v, (float)lo), scale));
                }
            }
            tables[job * 256 + v] = out;
        }
    }
}

// Sharpness's blurred pixel: the 3x3 [1 1 1; 1 5 1; 1 1 1] / 13 rounded (never a tie), the pixel on the border.
__device__ __forceinline__ u32 am_sharpen_blur(const u8* plane, u64 side, u64 y, u64 x) {
    if (y == 0 || x == 0 || y + 1 == side || x + 1 == side) return plane[y * side + x];
    u32 s = 4u * plane[y * side + x];
    for (u64 yy = y - 1; yy <= y + 1; ++yy)
        for (u64 xx = x - 1; xx <= x + 1; ++xx) s += plane[yy * side + xx];
    return (2u * s + 13u) / 26u;
}

extern "C" __global__ void augmix_apply(AugmentGeom g, const SampleAug* __restrict__ params, u32 d, const u8* __restrict__ src,
                                        u64 src_sample_stride, u64 src_chain_stride, const u8* __restrict__ tables,
                                        u8* __restrict__ dst) {
    const u64 side = g.out, plane = side * side, per_sample = AUGMIX_MAX_WIDTH * plane, total = g.n * per_sample;
    FG_GRID_STRIDE(e, total) {
        const u64 i = fg_div(e, per_sample), rest = e - i * per_sample;
        const u64 chain = fg_div(rest, plane), pix = rest - chain * plane;
        const AugmixParams& p = params[i].augmix;
        if (!p.on || p.depth[chain] <= d) continue;
        const AugmixOp& op = p.ops[chain][d];
        const u8* image = src + i * src_sample_stride + chain * src_chain_stride;
        u8* out = dst + (i * AUGMIX_MAX_WIDTH + chain) * 3 * plane + pix;
        const u64 y = fg_div(pix, side), x = pix - y * side;
        if (op.kind <= AM_ROTATE) {
            // Affine grid (base - (side - 1) / 2, theta rescaled on the host), grid_sample's unnormalisation,
            // bilinear with PyTorch's CPU weight products, zero outside, round half to even.
            const float half = (float)side * 0.5f, fside = (float)side;
            const float bx = am_sub(am_add((float)x, 0.5f), half), by = am_sub(am_add((float)y, 0.5f), half);
            const float gx = am_add(am_add(am_mul(bx, op.theta[0]), am_mul(by, op.theta[1])), op.theta[2]);
            const float gy = am_add(am_add(am_mul(bx, op.theta[3]), am_mul(by, op.theta[4])), op.theta[5]);
            const float ix = am_div(am_sub(am_mul(am_add(gx, 1.0f), fside), 1.0f), 2.0f);
            const float iy = am_div(am_sub(am_mul(am_add(gy, 1.0f), fside), 1.0f), 2.0f);
            const float x0 = floorf(ix), y0 = floorf(iy);
            const float lx = am_sub(ix, x0), ly = am_sub(iy, y0);
            const float ex = am_sub(1.0f, lx), sy = am_sub(1.0f, ly);
            const float w[4] = {am_mul(sy, ex), am_mul(sy, lx), am_mul(ly, ex), am_mul(ly, lx)};
            const float cy[4] = {y0, y0, am_add(y0, 1.0f), am_add(y0, 1.0f)};
            const float cx[4] = {x0, am_add(x0, 1.0f), x0, am_add(x0, 1.0f)};
#pragma unroll
            for (int c = 0; c < 3; ++c) {
                float acc = 0.0f;
#pragma unroll
                for (int k = 0; k < 4; ++k) {
                    const bool inside = cy[k] >= 0.0f && cx[k] >= 0.0f && cy[k] < fside && cx[k] < fside;
                    const float v = inside ? (float)image[c * plane + (u64)cy[k] * side + (u64)cx[k]] : 0.0f;
                    acc = am_add(acc, am_mul(v, w[k]));
                }
                out[c * plane] = (u8)fminf(fmaxf(rintf(acc), 0.0f), 255.0f);
            }
        } else if (op.kind == AM_COLOR) {
            const float grey = (float)am_grey(image[pix], image[plane + pix], image[2 * plane + pix]);
#pragma unroll
            for (int c = 0; c < 3; ++c) out[c * plane] = am_blend(op, image[c * plane + pix], grey);
        } else if (op.kind == AM_SHARPNESS) {
#pragma unroll
            for (int c = 0; c < 3; ++c) {
                const u8* ch = image + c * plane;
                // torchvision leaves images with a side of at most 2 unchanged.
                out[c * plane] = side <= 2 ? ch[pix] : am_blend(op, ch[pix], (float)am_sharpen_blur(ch, side, y, x));
            }
        } else {
            const u8* t = tables + (i * AUGMIX_MAX_WIDTH + chain) * 3 * 256;
#pragma unroll
            for (int c = 0; c < 3; ++c) out[c * plane] = t[c * 256 + image[c * plane + pix]];
        }
    }
}

extern "C" __global__ void augmix_mix(AugmentGeom g, const SampleAug* __restrict__ params, const u8* __restrict__ orig,
                                      const u8* __restrict__ buf0, const u8* __restrict__ buf1, float* __restrict__ a) {
    const u64 img = 3 * g.out * g.out, total = g.n * img;
    FG_GRID_STRIDE(e, total) {
        const u64 i = fg_div(e, img), rest = e - i * img;
        const AugmixParams& p = params[i].augmix;
        if (!p.on) continue;
        float mix = am_mul(p.orig_weight, (float)orig[e]);
#pragma unroll
        for (int chain = 0; chain < AUGMIX_MAX_WIDTH; ++chain) {
            const u32 depth = p.depth[chain];
            if (depth == 0) continue;
            // The chain's last op (depth - 1) wrote buffer (depth - 1) % 2.
            const u8* buf = ((depth - 1) & 1u) ? buf1 : buf0;
            const float v = (float)buf[(i * AUGMIX_MAX_WIDTH + chain) * img + rest];
            mix = am_add(mix, am_mul(p.chain_weights[chain], v));
        }
        a[e] = (float)am_trunc_u8(mix);
    }
}
