// augment.cu: cached u8 images [n, src, src, 3] (HWC RGB) -> `views` normalised f32 views [n, 3, out, out], as
// src/backend/cpu/augment.rs (the reference; semantics of each operation in src/augment/policy.rs). Per-sample
// parameters (SampleAug) and the INVERSE jigsaw permutations are device copies of host data.
//
// Stages (one kernel each, in this order, on the backend's stream):
//   augment_resample: one thread per output pixel: crop + bilinear resize (align_corners=False, no antialias)
//                     with hflip/vflip folded into the sampling position, then the colour-jitter adjustments that
//                     precede contrast in the sample's order -> a [n, 3, out, out] (0..255 scale).
//   (AugMix, kernels/augmix.cu, in place on `a` for the samples that have it: the view rounded to u8, AugMix'ed.)
//   augment_mean:     one block per sample (grid-stride over samples): mean grey level of `a` for samples whose
//                     jitter is on and has contrast, as an exact 16.16 fixed-point integer sum -> mean[n].
//   augment_recolour: one thread per pixel, in place on `a`: contrast and the later jitter adjustments, grayscale.
//   augment_blur_h:   one thread per element: horizontal Gaussian blur (clamp-to-edge) a -> b.
//   augment_blur_v:   one thread per element of the un-shuffled image: vertical blur of b, solarize, /255,
//                     normalise; the value is written to every view, at its jigsaw destination (the gather
//                     `src_tile = perm[dst_tile]` done as a scatter with the inverse permutation): the jigsaw is
//                     fused into the kernel that writes the outputs.
// Bit-exactness: stages 1-4 and the blur sum of stage 5 use __fadd_rn / __fmul_rn / __fsub_rn / __fdiv_rn, which
// the compiler never contracts into FMA, in the CPU reference's operation order; so the values compared with
// solarize's threshold are the CPU's bit for bit, and the grey mean is an order-independent integer sum.
// Launch: block FG_BLOCK (256), grid-stride grids, no dynamic smem; augment_mean: blockDim.x multiple of 32,
// static smem 256 B. Workspaces a, b: n*3*out*out floats each; mean: n floats.
// Signatures:
//   augment_resample(AugmentGeom g, const unsigned char* images, const SampleAug* params, float* a)
//   augment_mean(AugmentGeom g, const SampleAug* params, const float* a, float* mean)
//   augment_recolour(AugmentGeom g, const SampleAug* params, const float* mean, float* a)
//   augment_blur_h(AugmentGeom g, const SampleAug* params, const float* a, float* b)
//   augment_blur_v(AugmentGeom g, const SampleAug* params, const unsigned int* inv_perms, const float* b,
//                  float* y0, float* y1, float* y2, float* y3)   (y_k NULL for k >= views)
#ifndef FG_COMMON_CUH
#include "common.cuh"
#endif

#include "augment_params.cuh"

// IEEE single operations that are never fused into FMA (the CPU reference rounds after every one).
__device__ __forceinline__ float add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ float sub(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ float mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ float divide(float a, float b) { return __fdiv_rn(a, b); }
__device__ __forceinline__ float clamp255(float v) { return fminf(fmaxf(v, 0.0f), 255.0f); }

// ITU-R 601-2 luma, ((0.299 r + 0.587 g) + 0.114 b).
__device__ __forceinline__ float luma(float r, float g, float b) {
    return add(add(mul(0.299f, r), mul(0.587f, g)), mul(0.114f, b));
}

// Source neighbours (relative to the crop) and the weight of the second, align_corners=False.
__device__ __forceinline__ void source_index(u64 o, unsigned int crop_len, u64 out, u32& i0, u32& i1, float& l) {
    const float scale = divide((float)crop_len, (float)out);
    const float s = fmaxf(sub(mul(add((float)o, 0.5f), scale), 0.5f), 0.0f);
    i0 = min((u32)floorf(s), crop_len - 1u);
    i1 = min(i0 + 1u, crop_len - 1u);
    l = sub(s, (float)i0);
}

// torchvision's _rgb2hsv / _hsv2rgb with the hue shifted (0..255 scale).
__device__ void shift_hue(float& r, float& g, float& b, float hue) {
    const float maxc = fmaxf(fmaxf(r, g), b), minc = fminf(fminf(r, g), b);
    const bool eqc = maxc == minc;
    const float cr = sub(maxc, minc);
    const float s = divide(cr, eqc ? 1.0f : maxc);
    const float crd = eqc ? 1.0f : cr;
    const float rc = divide(sub(maxc, r), crd), gc = divide(sub(maxc, g), crd), bc = divide(sub(maxc, b), crd);
    float h;
    if (maxc == r) h = sub(bc, gc);
    else if (maxc == g) h = sub(add(2.0f, rc), bc);
    else h = sub(add(4.0f, gc), rc);
    h = add(divide(h, 6.0f), 1.0f);
    h = sub(h, floorf(h));
    h = add(h, hue);
    h = sub(h, floorf(h));
    const float v = maxc;
    const float h6 = mul(h, 6.0f);
    const float fi = floorf(h6);
    const float f = sub(h6, fi);
    const float p = clamp255(mul(v, sub(1.0f, s)));
    const float q = clamp255(mul(v, sub(1.0f, mul(s, f))));
    const float t = clamp255(mul(v, sub(1.0f, mul(s, sub(1.0f, f)))));
    int i = ((int)fi) % 6;
    if (i < 0) i += 6;
    switch (i) {
        case 0: r = v; g = t; b = p; break;
        case 1: r = q; g = v; b = p; break;
        case 2: r = p; g = v; b = t; break;
        case 3: r = p; g = q; b = v; break;
        case 4: r = t; g = p; b = v; break;
        default: r = v; g = p; b = q; break;
    }
}

// Jitter adjustment `which` (0 brightness, 1 contrast, 2 saturation, 3 hue).
__device__ void adjust(unsigned int which, const SampleAug& p, float& r, float& g, float& b, float mean) {
    if (which == 0) {
        r = clamp255(mul(p.brightness, r));
        g = clamp255(mul(p.brightness, g));
        b = clamp255(mul(p.brightness, b));
    } else if (which == 1) {
        const float m = mul(sub(1.0f, p.contrast), mean);
        r = clamp255(add(mul(p.contrast, r), m));
        g = clamp255(add(mul(p.contrast, g), m));
        b = clamp255(add(mul(p.contrast, b), m));
    } else if (which == 2) {
        const float m = mul(sub(1.0f, p.saturation), luma(r, g, b));
        r = clamp255(add(mul(p.saturation, r), m));
        g = clamp255(add(mul(p.saturation, g), m));
        b = clamp255(add(mul(p.saturation, b), m));
    } else {
        shift_hue(r, g, b, p.hue);
    }
}

// Jitter adjustments [0, split) run in augment_resample, [split, end) (contrast first) in augment_recolour;
// end = 0 when jitter is off (nothing runs), else 4. The mean is needed when split < end.
__device__ __forceinline__ void jitter_stages(const SampleAug& p, u32& split, u32& end) {
    split = 0;
    end = p.jitter ? 4u : 0u;
    if (!p.jitter) return;
    split = 4;
    for (u32 k = 0; k < 4; ++k)
        if (p.jitter_order[k] == 1) {
            split = k;
            break;
        }
}

extern "C" __global__ void augment_resample(AugmentGeom g, const unsigned char* __restrict__ images,
                                            const SampleAug* __restrict__ params, float* __restrict__ a) {
    const u64 o = g.out, plane = o * o, total = g.n * plane;
    FG_GRID_STRIDE(e, total) {
        const u64 i = fg_div(e, plane), pix = e - i * plane;
        const u64 y = fg_div(pix, o), x = pix - y * o;
        const SampleAug& p = params[i];
        u32 y0, y1, x0, x1;
        float ly, lx;
        source_index(p.vflip ? o - 1 - y : y, p.crop_h, o, y0, y1, ly);
        source_index(p.hflip ? o - 1 - x : x, p.crop_w, o, x0, x1, lx);
        const unsigned char* img = images + i * g.src * g.src * 3;
        const u64 r0 = (u64)(p.crop_top + y0) * g.src, r1 = (u64)(p.crop_top + y1) * g.src;
        const u64 c0 = p.crop_left + x0, c1 = p.crop_left + x1;
        float rgb[3];
#pragma unroll
        for (int ch = 0; ch < 3; ++ch) {
            const float top = add(mul(sub(1.0f, lx), (float)img[(r0 + c0) * 3 + ch]), mul(lx, (float)img[(r0 + c1) * 3 + ch]));
            const float bottom = add(mul(sub(1.0f, lx), (float)img[(r1 + c0) * 3 + ch]), mul(lx, (float)img[(r1 + c1) * 3 + ch]));
            rgb[ch] = add(mul(sub(1.0f, ly), top), mul(ly, bottom));
        }
        u32 split, end;
        jitter_stages(p, split, end);
        for (u32 k = 0; k < min(split, end); ++k) adjust(p.jitter_order[k], p, rgb[0], rgb[1], rgb[2], 0.0f);
        float* dst = a + i * 3 * plane + pix;
        dst[0] = rgb[0];
        dst[plane] = rgb[1];
        dst[2 * plane] = rgb[2];
    }
}

extern "C" __global__ void augment_mean(AugmentGeom g, const SampleAug* __restrict__ params, const float* __restrict__ a,
                                        float* __restrict__ mean) {
    __shared__ unsigned long long scratch[32];
    const u64 plane = g.out * g.out;
    for (u64 i = blockIdx.x; i < g.n; i += gridDim.x) {
        u32 split, end;
        jitter_stages(params[i], split, end);
        if (split >= end) {  // uniform per block: no contrast, no mean needed
            if (threadIdx.x == 0) mean[i] = 0.0f;
            continue;
        }
        const float* img = a + i * 3 * plane;
        unsigned long long s = 0;
        for (u64 k = threadIdx.x; k < plane; k += blockDim.x)
            s += (unsigned long long)rintf(mul(fmaxf(luma(img[k], img[plane + k], img[2 * plane + k]), 0.0f), 65536.0f));
        // Integer sums are exact, so this order gives the CPU's sequential result.
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        __syncthreads();  // scratch may still be read for the previous sample
        if ((threadIdx.x & 31u) == 0) scratch[threadIdx.x >> 5] = s;
        __syncthreads();
        if (threadIdx.x == 0) {
            unsigned long long t = 0;
            for (u32 w = 0; w < (blockDim.x >> 5); ++w) t += scratch[w];
            mean[i] = (float)((double)t / (65536.0 * (double)plane));
        }
    }
}

extern "C" __global__ void augment_recolour(AugmentGeom g, const SampleAug* __restrict__ params, const float* __restrict__ mean,
                                            float* __restrict__ a) {
    const u64 plane = g.out * g.out, total = g.n * plane;
    FG_GRID_STRIDE(e, total) {
        const u64 i = fg_div(e, plane), pix = e - i * plane;
        const SampleAug& p = params[i];
        u32 split, end;
        jitter_stages(p, split, end);
        if (split >= end && !p.grayscale) continue;
        float* px = a + i * 3 * plane + pix;
        float r = px[0], gr = px[plane], b = px[2 * plane];
        const float m = mean[i];
        for (u32 k = split; k < end; ++k) adjust(p.jitter_order[k], p, r, gr, b, m);
        if (p.grayscale) r = gr = b = luma(r, gr, b);
        px[0] = r;
        px[plane] = gr;
        px[2 * plane] = b;
    }
}

extern "C" __global__ void augment_blur_h(AugmentGeom g, const SampleAug* __restrict__ params, const float* __restrict__ a,
                                          float* __restrict__ b) {
    const u64 o = g.out, img = 3 * o * o, total = g.n * img;
    FG_GRID_STRIDE(e, total) {
        const u64 i = fg_div(e, img);
        const u64 row = fg_div(e, o), x = e - row * o;
        const SampleAug& p = params[i];
        const int r = (int)p.blur_radius;
        if (r == 0) {
            b[e] = a[e];
            continue;
        }
        const float* line = a + row * o;
        float acc = 0.0f;
        for (int k = 0; k <= 2 * r; ++k) {
            const long long j = min(max((long long)x + k - r, 0ll), (long long)o - 1);
            acc = add(acc, mul(p.blur_taps[k], line[j]));
        }
        b[e] = acc;
    }
}

extern "C" __global__ void augment_blur_v(AugmentGeom g, const SampleAug* __restrict__ params,
                                          const unsigned int* __restrict__ inv_perms, const float* __restrict__ b,
                                          float* __restrict__ y0, float* __restrict__ y1, float* __restrict__ y2,
                                          float* __restrict__ y3) {
    const u64 o = g.out, plane = o * o, img = 3 * plane, total = g.n * img;
    FG_GRID_STRIDE(e, total) {
        const u64 i = fg_div(e, img), rest = e - i * img;
        const u64 c = fg_div(rest, plane), pix = rest - c * plane;
        const u64 y = fg_div(pix, o), x = pix - y * o;
        const SampleAug& p = params[i];
        const int r = (int)p.blur_radius;
        float v;
        if (r == 0) {
            v = b[e];
        } else {
            const float* col = b + i * img + c * plane + x;
            v = 0.0f;
            for (int k = 0; k <= 2 * r; ++k) {
                const long long j = min(max((long long)y + k - r, 0ll), (long long)o - 1);
                v = add(v, mul(p.blur_taps[k], col[j * o]));
            }
        }
        if (p.solarize && v >= 128.0f) v = 255.0f - v;
        // Selects instead of dynamic indexing, which would copy `g` (kernel parameter space) to local memory.
        const float mean_c = c == 0 ? g.mean[0] : (c == 1 ? g.mean[1] : g.mean[2]);
        const float std_c = c == 0 ? g.std[0] : (c == 1 ? g.std[1] : g.std[2]);
        const float out = (v / 255.0f - mean_c) / std_c;
        u64 perm_off = 0;
#pragma unroll
        for (int k = 0; k < AUG_MAX_VIEWS; ++k) {
            if ((u64)k >= g.views) break;
            const u64 grid = g.grids[k];
            float* yk = k == 0 ? y0 : (k == 1 ? y1 : (k == 2 ? y2 : y3));
            if (grid == 0) {
                yk[e] = out;
                continue;
            }
            // This pixel sits in source tile s; the inverse permutation gives the output tile that shows it.
            const u64 th = o / grid, ty = fg_div(y, th), tx = fg_div(x, th);
            const u64 src_tile = ty * grid + tx;
            const u64 dst_tile = inv_perms[perm_off + i * grid * grid + src_tile];
            const u64 dy = fg_div(dst_tile, grid), dx = dst_tile - dy * grid;
            const u64 oy = dy * th + (y - ty * th), ox = dx * th + (x - tx * th);
            yk[i * img + c * plane + oy * o + ox] = out;
            perm_off += g.n * grid * grid;
        }
    }
}
