// max_pool2d.cu: windowed max pool with implicit -inf padding, general k / stride / pad, NCHW, as
// src/backend/cpu/max_pool2d.rs. Window of output (oh, ow): rows [max(oh*s - pad, 0), min(oh*s + k - pad, h)),
// same for columns. Argmax rule (PyTorch's tie rule, identical to the CPU): the first maximum in row-major window
// order; a NaN always wins (so the last NaN of a window, value NaN); an all -inf window picks its first element.
//
//   max_pool2d_fwd: y = window max; if `idx` is not NULL also writes the argmax as a plane-local index
//                   (ih * w + iw, an unsigned int: h * w must be < 2^32) for max_pool2d_bwd_idx.
//   max_pool2d_bwd: GATHER, deterministic, no atomics: one thread per INPUT element; it visits, in increasing
//                   (oh, ow) order, every window containing it, recomputes that window's argmax from x and adds dy
//                   when the argmax is itself. Same summation order as the CPU, so bitwise-equal sums. dx WRITTEN
//                   (every element, zeros included).
//   max_pool2d_bwd_idx: the same gather, reading the argmax saved by the forward instead of recomputing it.
// Launch (all three): block FG_BLOCK (256), grid any (grid-stride; fwd over n*c*ho*wo, bwd over n*c*h*w), no smem.
// Signatures:
//   max_pool2d_fwd(MaxPool2dGeom g, const float* x, float* y, unsigned int* idx /* nullable */)
//   max_pool2d_bwd(MaxPool2dGeom g, const float* x, const float* dy, float* dx)
//   max_pool2d_bwd_idx(MaxPool2dGeom g, const unsigned int* idx, const float* dy, float* dx)
#ifndef FG_COMMON_CUH
#include "common.cuh"
#endif

// Mirrors `geom::MaxPool2dGeom` (usize -> unsigned long long), field for field.
struct MaxPool2dGeom {
    unsigned long long n, c, h, w, k, stride, pad, ho, wo;
};
static_assert(sizeof(MaxPool2dGeom) == 72, "MaxPool2dGeom layout");

// Argmax (plane-local index) and max of window (oh, ow) in `plane`; mirrors `window_argmax` in the CPU code.
__device__ __forceinline__ u64 mp_window_argmax(const MaxPool2dGeom& g, const float* __restrict__ plane, u64 oh,
                                                u64 ow, float& best_out) {
    const u64 hs = oh * g.stride, ws = ow * g.stride;
    const u64 h0 = hs > g.pad ? hs - g.pad : 0;
    const u64 he = hs + g.k > g.pad ? hs + g.k - g.pad : 0;
    const u64 h1 = he < g.h ? he : g.h;
    const u64 w0 = ws > g.pad ? ws - g.pad : 0;
    const u64 we = ws + g.k > g.pad ? ws + g.k - g.pad : 0;
    const u64 w1 = we < g.w ? we : g.w;
    u64 best_i = h0 * g.w + w0;
    float best = fg_neg_inf();
    for (u64 ih = h0; ih < h1; ++ih) {
        for (u64 iw = w0; iw < w1; ++iw) {
            const u64 i = ih * g.w + iw;
            const float v = plane[i];
            if (v > best || fg_isnan(v)) {
                best = v;
                best_i = i;
            }
        }
    }
    best_out = best;
    return best_i;
}

extern "C" __global__ void max_pool2d_fwd(MaxPool2dGeom g, const float* __restrict__ x, float* __restrict__ y,
                                          unsigned int* __restrict__ idx) {
    const u64 y_plane = g.ho * g.wo, total = g.n * g.c * y_plane, x_plane = g.h * g.w;
    FG_GRID_STRIDE(e, total) {
        const u64 p = fg_div(e, y_plane), r = e - p * y_plane;
        const u64 oh = fg_div(r, g.wo), ow = r - oh * g.wo;
        float best;
        const u64 bi = mp_window_argmax(g, x + p * x_plane, oh, ow, best);
        y[e] = best;
        if (idx) idx[e] = (unsigned int)bi;
    }
}

// Range of output indices o with o*stride - pad <= i < o*stride - pad + k, clipped to [0, out): [lo, hi).
__device__ __forceinline__ void mp_out_range(u64 i, u64 k, u64 stride, u64 pad, u64 out, u64& lo, u64& hi) {
    // o*stride <= i + pad  ->  o <= (i + pad) / stride
    // o*stride > i + pad - k  ->  o >= floor((i + pad - k) / stride) + 1 when i + pad >= k, else 0
    const u64 ip = i + pad;
    lo = ip >= k ? fg_div(ip - k, stride) + 1 : 0;
    u64 h = fg_div(ip, stride) + 1;
    hi = h < out ? h : out;
}

extern "C" __global__ void max_pool2d_bwd(MaxPool2dGeom g, const float* __restrict__ x, const float* __restrict__ dy,
                                          float* __restrict__ dx) {
    const u64 x_plane = g.h * g.w, y_plane = g.ho * g.wo, total = g.n * g.c * x_plane;
    FG_GRID_STRIDE(e, total) {
        const u64 p = fg_div(e, x_plane), r = e - p * x_plane;
        const u64 ih = fg_div(r, g.w), iw = r - ih * g.w;
        u64 oh0, oh1, ow0, ow1;
        mp_out_range(ih, g.k, g.stride, g.pad, g.ho, oh0, oh1);
        mp_out_range(iw, g.k, g.stride, g.pad, g.wo, ow0, ow1);
        const float* plane = x + p * x_plane;
        const float* dyp = dy + p * y_plane;
        float acc = 0.0f;
        for (u64 oh = oh0; oh < oh1; ++oh)
            for (u64 ow = ow0; ow < ow1; ++ow) {
                float best;
                if (mp_window_argmax(g, plane, oh, ow, best) == r) acc += dyp[oh * g.wo + ow];
            }
        dx[e] = acc;
    }
}

extern "C" __global__ void max_pool2d_bwd_idx(MaxPool2dGeom g, const unsigned int* __restrict__ idx,
                                              const float* __restrict__ dy, float* __restrict__ dx) {
    const u64 x_plane = g.h * g.w, y_plane = g.ho * g.wo, total = g.n * g.c * x_plane;
    FG_GRID_STRIDE(e, total) {
        const u64 p = fg_div(e, x_plane), r = e - p * x_plane;
        const u64 ih = fg_div(r, g.w), iw = r - ih * g.w;
        u64 oh0, oh1, ow0, ow1;
        mp_out_range(ih, g.k, g.stride, g.pad, g.ho, oh0, oh1);
        mp_out_range(iw, g.k, g.stride, g.pad, g.wo, ow0, ow1);
        const unsigned int* ip = idx + p * y_plane;
        const float* dyp = dy + p * y_plane;
        float acc = 0.0f;
        for (u64 oh = oh0; oh < oh1; ++oh)
            for (u64 ow = ow0; ow < ow1; ++ow)
                if ((u64)ip[oh * g.wo + ow] == r) acc += dyp[oh * g.wo + ow];
        dx[e] = acc;
    }
}
