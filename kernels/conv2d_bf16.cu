// conv2d_bf16.cu: convolution as implicit GEMM on bf16 tensor cores (mma.sync m16n8k16, fp32 accumulation),
// operands staged through shared memory by a multi-stage cp.async pipeline and read with ldmatrix. Semantics as
// kernels/conv2d.cu and src/backend/cpu/conv2d.rs (cross-correlation, zero padding), in another layout.
//
// LAYOUT. Activations NHWC bf16 with a channel stride C that is a multiple of 8 (`c` below; a tensor with fewer real
// channels, e.g. the RGB stem input, is zero-padded to 8 by the conversion kernel: padded channels hold 0 in x and in
// w, so they add nothing). Weights [c_out, kh, kw, C] bf16. The GEMM's reduction dimension (kh, kw, C) is then
// contiguous in C, so every 8-element (16-byte) chunk of an operand row is one aligned `cp.async.cg` of 16 bytes
// from one input pixel; chunks outside the image, past M/N or past K are zero-filled with cp.async's src-size form.
// Requirements (checked by the launcher, src/backend/cuda/launch/conv2d_bf16.rs): C % 8 == 0, c_out % 8 == 0,
// 16-byte aligned tensors, every index < 2^31.
// WHERE CONVERSIONS HAPPEN: the engine stores NCHW f32 activations and OIHW f32 weights. With `--precision bf16`
// the CUDA backend's conv2d_fwd / conv2d_bwd run these kernels behind that boundary
// (src/backend/cuda/launch/conv2d_bf16_nchw.rs), converting on every call with the layout kernels at the bottom of
// this file: x, dy NCHW f32 -> NHWC bf16 and w OIHW f32 -> [O, kh, kw, C] bf16 (the same kernel with n = O,
// hw = kh*kw; c_out not a multiple of 8 is padded with zero weight rows and zero dy channels); the GEMMs write f32
// NHWC into workspaces, and `conv2d_bf16_nhwc_f32_to_nchw` brings y (+ bias), dx and dw (accumulated, dw +=) back
// to NCHW / OIHW. The kernel lab (`fgssl lab conv`) and selftest also reach the launchers directly. Keeping
// activations NHWC bf16 between layers (no conversions) is the performance issue's job.
//
// THE THREE GEMMS (row-major C[M, N] = sum_k A[m, k] * B[n, k]; mma's ".row.col"):
//   fwd:   M = n*ho*wo (output pixels), N = c_out, K = kh*kw*C.   A[m,(i,j,c)] = x[img, oh*s+i-p, ow*s+j-p, c],
//          B[co,k] = w[co, k].  y[m, co] written (bf16 and/or f32, NHWC).
//   dgrad: M = n*h*w (input pixels), N = C, K = kh*kw*c_out.      A[m,(i,j,co)] = dy[img, (ih+p-i)/s, (iw+p-j)/s, co]
//          where divisible and in range, else 0;  B[ci,(i,j,co)] = wt[ci, i, j, co], the weights transposed by
//          `conv2d_bf16_weight_transpose` (small) so that B is K-contiguous too.  dx[m, ci] written (bf16 and/or f32).
//   wgrad: M = c_out, N = kh*kw*C, K = n*ho*wo (output pixels).   A[co, pix] = dy[pix, co], B[(i,j,c), pix] =
//          x[img, oh*s+i-p, ow*s+j-p, c]. Both are contiguous along M/N, not K: their tiles are stored [BK][BM]
//          and read with `ldmatrix.trans`. Split-K over blockIdx.z: split z writes its partial C to
//          ws[z, M, N] (f32), then `conv2d_bf16_wgrad_reduce` adds the splits in order z = 0, 1, ... to dw
//          ([c_out, kh, kw, C] f32, accumulated +=). No atomics: bitwise reproducible for a given launch shape.
//
// TILES. Block tile BM x BN x BK (BK = 32), warp tile WM x WN (MI = WM/16 by NI = WN/8 mma tiles per warp),
// STAGES-deep cp.async ring. Configurations (entry points `conv2d_bf16_<pass>_<BM>x<BN>`):
//   128x128: 8 warps (2 x 4, warp tile 64x32), 4 stages, 256 threads;  64x64: 4 warps (2 x 2, 32x32), 4 stages, 128.
// Shared memory per stage (bf16 elements): K-major (fwd, dgrad) (BM + BN) * (BK + 8); M/N-major (wgrad)
// BK * (BM + 8 + BN + 8). The +8 padding makes the 8 rows an ldmatrix reads (80- or 272-byte stride) hit 8 distinct
// 16-byte bank groups: conflict-free without a swizzle. Dynamic smem = STAGES * that * 2 bytes (up to 80 KB; the
// launcher raises the function's limit), checked against %dynamic_smem_size at entry (trap on mismatch).
// The launcher's table (`Tile::for_shape`) picks 128x128 when that gives at least one wave of blocks on the card,
// else 64x64; wgrad's split count fills about two waves.
//
// Launch: grid (ceil(N/BN), ceil(M/BM), splits), block 32 * warps, dynamic smem as above.
// Signatures:
//   conv2d_bf16_fwd_<T>(ConvBf16Geom g, const u16* x, const u16* w, u16* y /*nullable*/, float* y_f32 /*nullable*/)
//   conv2d_bf16_dgrad_<T>(ConvBf16Geom g, const u16* dy, const u16* wt, u16* dx /*nullable*/, float* dx_f32 /*nullable*/)
//   conv2d_bf16_wgrad_<T>(ConvBf16Geom g, const u16* dy, const u16* x, float* ws /*[splits, M, N]*/, float* unused)
//   conv2d_bf16_wgrad_reduce(u64 mn, u32 splits, const float* ws, float* dw)            block FG_BLOCK, grid-stride
//   conv2d_bf16_weight_transpose(u32 c_out, u32 khw, u32 c, const u16* w, u16* wt)       [O,khw,C] -> [C,khw,O]
//   conv2d_bf16_nchw_to_nhwc(u32 n, u32 c, u32 hw, u32 c_pad, const float* x, u16* y)    f32 -> bf16 (RNE), pads 0
//   conv2d_bf16_nhwc_to_nchw(u32 n, u32 c, u32 hw, u32 c_pad, const u16* x, float* y)    drops padded channels
//   conv2d_bf16_nhwc_f32_to_nchw(u32 n, u32 c, u32 hw, u32 c_pad, const float* x, const float* bias /*nullable*/,
//                                u32 accumulate, float* y)                             y (+)= x (+ bias), f32
// (u16 = bf16 bits; the layout kernels: block FG_BLOCK, grid-stride over the output.)
#ifndef FG_COMMON_CUH
#include "common.cuh"
#endif

typedef unsigned short u16;

// Mirrors `ConvBf16Geom` in src/backend/cuda/launch/conv2d_bf16.rs (12 x u32). `c` is the channel stride of x/dx
// and the last weight dimension (a multiple of 8); `k_tiles_per_split` is the number of BK-tiles of K one blockIdx.z
// handles (ceil(K / BK) when there is no split).
struct ConvBf16Geom {
    u32 n, h, w, c, c_out, kh, kw, stride, pad, ho, wo, k_tiles_per_split;
};
static_assert(sizeof(ConvBf16Geom) == 48, "ConvBf16Geom must mirror the Rust struct");

#define BF16_BK 32
#define BF16_PAD 8

enum { PASS_FWD = 0, PASS_DGRAD = 1, PASS_WGRAD = 2 };

// ---- PTX wrappers ----------------------------------------------------------------------------------------------

__device__ __forceinline__ u32 smem_addr(const void* p) {
    u64 a;
    asm("cvta.to.shared.u64 %0, %1;" : "=l"(a) : "l"(p));
    return (u32)a;
}

// 16 bytes global -> shared; `valid == false` reads nothing and writes 16 zero bytes (src-size 0).
__device__ __forceinline__ void cp_async_16(u32 dst, const void* src, bool valid) {
    const int src_size = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_size) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// Four 8x8 b16 matrices; lane l gives the address of row (l % 8) of matrix (l / 8). Without .trans lane l receives
// row l/4, columns 2*(l%4), 2*(l%4)+1 of each matrix; with .trans the transpose (rows 2*(l%4)+{0,1}, column l/4).
__device__ __forceinline__ void ldmatrix_x4(u32 (&r)[4], u32 addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(u32 (&r)[4], u32 addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

// d += a * b, A 16x16 row-major fragment (4 regs), B 16x8 "col" fragment (2 regs), fp32 accumulators.
__device__ __forceinline__ void mma_bf16_16816(float (&d)[4], const u32 (&a)[4], u32 b0, u32 b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// f32 -> bf16 bits, round to nearest even (as half::bf16::from_f32); NaN stays a quiet NaN.
__device__ __forceinline__ u32 bf16_bits(float f) {
    const u32 u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return ((u >> 16) | 0x40u) & 0xffffu;
    return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}
__device__ __forceinline__ float bf16_to_f32(u16 h) { return __uint_as_float((u32)h << 16); }

// ---- the implicit GEMM ----------------------------------------------------------------------------------------

extern __shared__ __align__(16) unsigned char conv_bf16_smem[];

template <int BM, int BN, int WM, int WN, int STAGES, int PASS>
struct ConvTile {
    static constexpr int TM = BM, TN = BN, NSTAGES = STAGES;
    static constexpr int WARPS_M = BM / WM, WARPS_N = BN / WN;
    static constexpr int THREADS = 32 * WARPS_M * WARPS_N;
    static constexpr int MI = WM / 16, NI = WN / 8;
    static constexpr bool MN_MAJOR = PASS == PASS_WGRAD;
    // Row strides (bf16 elements) and stage sizes of the A and B tiles.
    static constexpr int LDA = MN_MAJOR ? BM + BF16_PAD : BF16_BK + BF16_PAD;
    static constexpr int LDB = MN_MAJOR ? BN + BF16_PAD : BF16_BK + BF16_PAD;
    static constexpr int A_STAGE = MN_MAJOR ? BF16_BK * LDA : BM * LDA;
    static constexpr int B_STAGE = MN_MAJOR ? BF16_BK * LDB : BN * LDB;
    static constexpr int SMEM_BYTES = STAGES * (A_STAGE + B_STAGE) * 2;
    // 16-byte chunks each thread copies per stage.
    static constexpr int A_CHUNKS = BM * BF16_BK / 8 / THREADS;
    static constexpr int B_CHUNKS = BN * BF16_BK / 8 / THREADS;
    static_assert(A_CHUNKS * THREADS * 8 == BM * BF16_BK && B_CHUNKS * THREADS * 8 == BN * BF16_BK, "whole chunks");
    static_assert(NI % 2 == 0 && WM % 16 == 0, "B fragments are loaded two n8 tiles at a time");
    // K-major tiles: a thread's chunk column (tid % 4) is the same for all its chunks. M/N-major tiles: a thread's
    // chunk column (tid % (BM/8)) likewise, since THREADS is a multiple of BM/8 and BN/8.
    static_assert(THREADS % (BM / 8) == 0 && THREADS % (BN / 8) == 0, "fixed chunk column per thread");
};

// GEMM dimensions of a pass.
template <int PASS>
__device__ __forceinline__ void gemm_dims(const ConvBf16Geom& g, u32& M, u32& N, u32& K) {
    if (PASS == PASS_FWD) {
        M = g.n * g.ho * g.wo, N = g.c_out, K = g.kh * g.kw * g.c;
    } else if (PASS == PASS_DGRAD) {
        M = g.n * g.h * g.w, N = g.c, K = g.kh * g.kw * g.c_out;
    } else {
        M = g.c_out, N = g.kh * g.kw * g.c, K = g.n * g.ho * g.wo;
    }
}

template <class T, int PASS>
__device__ __forceinline__ void conv_bf16_gemm(const ConvBf16Geom& g, const u16* __restrict__ a_src, const u16* __restrict__ b_src,
                                               u16* __restrict__ out_bf16, float* __restrict__ out_f32) {
    constexpr int BK = BF16_BK, STAGES = T::NSTAGES, THREADS = T::THREADS, MI = T::MI, NI = T::NI;
    constexpr bool MN = T::MN_MAJOR;
    u32 M, N, K;
    gemm_dims<PASS>(g, M, N, K);
    {
        u32 dyn;
        asm("mov.u32 %0, %%dynamic_smem_size;" : "=r"(dyn));
        if (dyn < (u32)T::SMEM_BYTES) __trap();  // the launcher's smem size disagrees with this tile: never guess
    }
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int warp_m = warp / T::WARPS_N, warp_n = warp % T::WARPS_N;
    const u32 n0 = blockIdx.x * T::TN, m0 = blockIdx.y * T::TM;
    const u32 k_tiles = (K + BK - 1) / BK;
    const u32 kt_begin = blockIdx.z * g.k_tiles_per_split;
    const u32 kt_end = min(k_tiles, kt_begin + g.k_tiles_per_split);
    const int nk = kt_end > kt_begin ? (int)(kt_end - kt_begin) : 0;
    const u32 sA = smem_addr(conv_bf16_smem);
    const u32 sB = sA + STAGES * T::A_STAGE * 2;

    // ---- per-thread source state, fixed for the whole K loop ----
    // K-major (fwd, dgrad): every chunk of this thread sits in chunk column kc of its row.
    const int kc = tid % (BK / 8);
    int a_base[T::A_CHUNKS], a_h0[T::A_CHUNKS], a_w0[T::A_CHUNKS];  // a_base < 0: row past M
    // M/N-major (wgrad): this thread's A column (co) and B column chunk (i, j, c0); < 0: past M / N.
    const int a_mc = tid % (T::TM / 8), b_nc = tid % (T::TN / 8);
    int a_col = -1, b_i = 0, b_j = 0, b_c0 = -1;
    if (MN) {
        const u32 mcol = m0 + a_mc * 8, ncol = n0 + b_nc * 8;
        if (mcol < M) a_col = (int)mcol;
        if (ncol < N) {
            const u32 t = ncol / g.c;
            b_c0 = (int)(ncol - t * g.c), b_j = (int)(t % g.kw), b_i = (int)(t / g.kw);
        }
    } else {
#pragma unroll
        for (int t = 0; t < T::A_CHUNKS; ++t) {
            const u32 m = m0 + (u32)(tid + t * THREADS) / (BK / 8);
            a_base[t] = -1, a_h0[t] = 0, a_w0[t] = 0;
            if (m >= M) continue;
            if (PASS == PASS_FWD) {  // row = output pixel; receptive field origin (oh*s - p, ow*s - p)
                const u32 hw = g.ho * g.wo, img = m / hw, r = m - img * hw, oh = r / g.wo, ow = r - oh * g.wo;
                a_base[t] = (int)(img * g.h * g.w);
                a_h0[t] = (int)(oh * g.stride) - (int)g.pad, a_w0[t] = (int)(ow * g.stride) - (int)g.pad;
            } else {  // dgrad: row = input pixel; keep ih + p, iw + p (tap i reads oh = (ih + p - i) / s)
                const u32 hw = g.h * g.w, img = m / hw, r = m - img * hw, ih = r / g.w, iw = r - ih * g.w;
                a_base[t] = (int)(img * g.ho * g.wo);
                a_h0[t] = (int)(ih + g.pad), a_w0[t] = (int)(iw + g.pad);
            }
        }
    }

    // Issues the cp.async copies of k-tile `kt` into ring slot `stage` (no commit).
    auto load_tile = [&](int stage, u32 kt) {
        if (!MN) {
            const u32 k = kt * BK + kc * 8;
            const bool kvalid = k < K;
            int i = 0, j = 0, c0 = 0;
            if (kvalid) {
                const u32 cdiv = PASS == PASS_FWD ? g.c : g.c_out, t = k / cdiv;
                c0 = (int)(k - t * cdiv), j = (int)(t % g.kw), i = (int)(t / g.kw);
            }
#pragma unroll
            for (int t = 0; t < T::A_CHUNKS; ++t) {
                const int row = (tid + t * THREADS) / (BK / 8);
                bool valid = kvalid && a_base[t] >= 0;
                const u16* src = a_src;
                if (PASS == PASS_FWD) {
                    const int ih = a_h0[t] + i, iw = a_w0[t] + j;
                    valid = valid && ih >= 0 && ih < (int)g.h && iw >= 0 && iw < (int)g.w;
                    if (valid) src = a_src + (u64)(a_base[t] + ih * (int)g.w + iw) * g.c + c0;
                } else {
                    const int th = a_h0[t] - i, tw = a_w0[t] - j, s = (int)g.stride;
                    valid = valid && th >= 0 && tw >= 0;
                    const int oh = valid ? th / s : 0, ow = valid ? tw / s : 0;
                    valid = valid && oh * s == th && ow * s == tw && oh < (int)g.ho && ow < (int)g.wo;
                    if (valid) src = a_src + (u64)(a_base[t] + oh * (int)g.wo + ow) * g.c_out + c0;
                }
                cp_async_16(sA + (stage * T::A_STAGE + row * T::LDA + kc * 8) * 2, src, valid);
            }
#pragma unroll
            for (int t = 0; t < T::B_CHUNKS; ++t) {
                const int row = (tid + t * THREADS) / (BK / 8);
                const u32 nrow = n0 + row;
                const bool valid = kvalid && nrow < N;
                cp_async_16(sB + (stage * T::B_STAGE + row * T::LDB + kc * 8) * 2, valid ? b_src + (u64)nrow * K + k : b_src, valid);
            }
        } else {
#pragma unroll
            for (int t = 0; t < T::A_CHUNKS; ++t) {
                const int kr = (tid + t * THREADS) / (T::TM / 8);
                const u32 pix = kt * BK + kr;
                const bool valid = a_col >= 0 && pix < K;
                cp_async_16(sA + (stage * T::A_STAGE + kr * T::LDA + a_mc * 8) * 2, valid ? a_src + (u64)pix * g.c_out + a_col : a_src, valid);
            }
#pragma unroll
            for (int t = 0; t < T::B_CHUNKS; ++t) {
                const int kr = (tid + t * THREADS) / (T::TN / 8);
                const u32 pix = kt * BK + kr;
                bool valid = b_c0 >= 0 && pix < K;
                const u16* src = b_src;
                if (valid) {
                    const u32 hw = g.ho * g.wo, img = pix / hw, r = pix - img * hw, oh = r / g.wo, ow = r - oh * g.wo;
                    const int ih = (int)(oh * g.stride) - (int)g.pad + b_i, iw = (int)(ow * g.stride) - (int)g.pad + b_j;
                    valid = ih >= 0 && ih < (int)g.h && iw >= 0 && iw < (int)g.w;
                    if (valid) src = b_src + (u64)((int)(img * g.h * g.w) + ih * (int)g.w + iw) * g.c + b_c0;
                }
                cp_async_16(sB + (stage * T::B_STAGE + kr * T::LDB + b_nc * 8) * 2, src, valid);
            }
        }
    };

    float acc[MI][NI][4];
#pragma unroll
    for (int mi = 0; mi < MI; ++mi)
#pragma unroll
        for (int ni = 0; ni < NI; ++ni)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[mi][ni][e] = 0.f;

    // Prologue: STAGES-1 tiles in flight. Every iteration commits exactly one group (possibly empty), so
    // wait_group(STAGES-2) at iteration `it` means tile `it` has landed.
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        if (s < nk) load_tile(s, kt_begin + s);
        cp_async_commit();
    }
    const int q = lane >> 3, r8 = lane & 7;
    for (int it = 0; it < nk; ++it) {
        cp_async_wait<STAGES - 2>();
        __syncthreads();  // tile `it` visible to all; everyone is done with the slot the prefetch below overwrites
        const int pf = it + STAGES - 1;
        if (pf < nk) load_tile(pf % STAGES, kt_begin + pf);
        cp_async_commit();
        const u32 a_stage = sA + (it % STAGES) * T::A_STAGE * 2, b_stage = sB + (it % STAGES) * T::B_STAGE * 2;
#pragma unroll
        for (int kk = 0; kk < BK / 16; ++kk) {
            u32 af[MI][4], bfr[NI][2];
#pragma unroll
            for (int mi = 0; mi < MI; ++mi) {
                // Matrices 0..3 of the A fragment: (m 0-7, k 0-7), (m 8-15, k 0-7), (m 0-7, k 8-15), (m 8-15, k 8-15).
                const int m = warp_m * (T::TM / T::WARPS_M) + mi * 16;
                if (!MN) {
                    ldmatrix_x4(af[mi], a_stage + ((m + (q & 1) * 8 + r8) * T::LDA + kk * 16 + (q >> 1) * 8) * 2);
                } else {
                    ldmatrix_x4_trans(af[mi], a_stage + ((kk * 16 + (q >> 1) * 8 + r8) * T::LDA + m + (q & 1) * 8) * 2);
                }
            }
#pragma unroll
            for (int nj = 0; nj < NI / 2; ++nj) {
                // Matrices 0..3: (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15) = b0, b1 of
                // n-tile 2nj, then of n-tile 2nj+1.
                const int n = warp_n * (T::TN / T::WARPS_N) + nj * 16;
                u32 t4[4];
                if (!MN) {
                    ldmatrix_x4(t4, b_stage + ((n + (q >> 1) * 8 + r8) * T::LDB + kk * 16 + (q & 1) * 8) * 2);
                } else {
                    ldmatrix_x4_trans(t4, b_stage + ((kk * 16 + (q & 1) * 8 + r8) * T::LDB + n + (q >> 1) * 8) * 2);
                }
                bfr[2 * nj][0] = t4[0], bfr[2 * nj][1] = t4[1], bfr[2 * nj + 1][0] = t4[2], bfr[2 * nj + 1][1] = t4[3];
            }
#pragma unroll
            for (int mi = 0; mi < MI; ++mi)
#pragma unroll
                for (int ni = 0; ni < NI; ++ni) mma_bf16_16816(acc[mi][ni], af[mi], bfr[ni][0], bfr[ni][1]);
        }
    }
    cp_async_wait<0>();

    // Epilogue: accumulator e of tile (mi, ni) is C[row, col + (e & 1)], row = lane/4 (+8 for e >= 2),
    // col = 2*(lane%4). N % 8 == 0 and col is even, so col < N implies col + 1 < N.
#pragma unroll
    for (int mi = 0; mi < MI; ++mi)
#pragma unroll
        for (int ni = 0; ni < NI; ++ni)
#pragma unroll
            for (int hh = 0; hh < 2; ++hh) {
                const u32 row = m0 + warp_m * (T::TM / T::WARPS_M) + mi * 16 + (lane >> 2) + hh * 8;
                const u32 col = n0 + warp_n * (T::TN / T::WARPS_N) + ni * 8 + (lane & 3) * 2;
                if (row >= M || col >= N) continue;
                const float v0 = acc[mi][ni][2 * hh], v1 = acc[mi][ni][2 * hh + 1];
                if (PASS == PASS_WGRAD) {
                    *reinterpret_cast<float2*>(out_f32 + (u64)blockIdx.z * M * N + (u64)row * N + col) = make_float2(v0, v1);
                } else {
                    const u64 off = (u64)row * N + col;
                    if (out_bf16 != nullptr) *reinterpret_cast<u32*>(out_bf16 + off) = bf16_bits(v0) | (bf16_bits(v1) << 16);
                    if (out_f32 != nullptr) *reinterpret_cast<float2*>(out_f32 + off) = make_float2(v0, v1);
                }
            }
}

#define CONV_BF16_ENTRY(NAME, PASS, BM, BN, WM, WN, STAGES)                                                           \
    extern "C" __global__ void __launch_bounds__(ConvTile<BM, BN, WM, WN, STAGES, PASS>::THREADS)                     \
        NAME(ConvBf16Geom g, const u16* __restrict__ a, const u16* __restrict__ b, u16* __restrict__ out,            \
             float* __restrict__ out_f32) {                                                                             \
        conv_bf16_gemm<ConvTile<BM, BN, WM, WN, STAGES, PASS>, PASS>(g, a, b, out, out_f32);                          \
    }

CONV_BF16_ENTRY(conv2d_bf16_fwd_128x128, PASS_FWD, 128, 128, 64, 32, 4)
CONV_BF16_ENTRY(conv2d_bf16_fwd_64x64, PASS_FWD, 64, 64, 32, 32, 4)
CONV_BF16_ENTRY(conv2d_bf16_dgrad_128x128, PASS_DGRAD, 128, 128, 64, 32, 4)
CONV_BF16_ENTRY(conv2d_bf16_dgrad_64x64, PASS_DGRAD, 64, 64, 32, 32, 4)
CONV_BF16_ENTRY(conv2d_bf16_wgrad_128x128, PASS_WGRAD, 128, 128, 64, 32, 4)
CONV_BF16_ENTRY(conv2d_bf16_wgrad_64x64, PASS_WGRAD, 64, 64, 32, 32, 4)

// dw[i] += sum over splits z = 0, 1, ... of ws[z * mn + i] (fixed order).
extern "C" __global__ void conv2d_bf16_wgrad_reduce(u64 mn, u32 splits, const float* __restrict__ ws, float* __restrict__ dw) {
    FG_GRID_STRIDE(i, mn) {
        float s = 0.f;
        for (u32 z = 0; z < splits; ++z) s += ws[(u64)z * mn + i];
        dw[i] += s;
    }
}

// wt[ci, t, co] = w[co, t, ci] for t < khw (dgrad's B operand).
extern "C" __global__ void conv2d_bf16_weight_transpose(u32 c_out, u32 khw, u32 c, const u16* __restrict__ w, u16* __restrict__ wt) {
    const u64 total = (u64)c_out * khw * c;
    FG_GRID_STRIDE(idx, total) {
        const u64 co = idx % c_out, t = (idx / c_out) % khw, ci = idx / ((u64)c_out * khw);
        wt[idx] = w[(co * khw + t) * c + ci];
    }
}

// ---- layout conversions ----------------------------------------------------------------------------------------

// y[img, p, ch] (c_pad channels) = bf16(x[img, ch, p]) for ch < c, 0 for the padding channels.
extern "C" __global__ void conv2d_bf16_nchw_to_nhwc(u32 n, u32 c, u32 hw, u32 c_pad, const float* __restrict__ x, u16* __restrict__ y) {
    const u64 total = (u64)n * hw * c_pad;
    FG_GRID_STRIDE(idx, total) {
        const u64 ch = idx % c_pad, p = (idx / c_pad) % hw, img = idx / ((u64)c_pad * hw);
        y[idx] = ch < c ? (u16)bf16_bits(x[(img * c + ch) * hw + p]) : (u16)0;
    }
}

// y[img, ch, p] = x[img, p, ch] for ch < c (bf16 -> f32, exact).
extern "C" __global__ void conv2d_bf16_nhwc_to_nchw(u32 n, u32 c, u32 hw, u32 c_pad, const u16* __restrict__ x, float* __restrict__ y) {
    const u64 total = (u64)n * c * hw;
    FG_GRID_STRIDE(idx, total) {
        const u64 p = idx % hw, ch = (idx / hw) % c, img = idx / ((u64)hw * c);
        y[idx] = bf16_to_f32(x[(img * hw + p) * c_pad + ch]);
    }
}

// The same permutation for f32 data, with the two things the NCHW boundary of the training path needs on the way:
// y[img, ch, p] (+)= x[img, p, ch] (+ bias[ch]). Uses: the GEMMs' f32 outputs -> NCHW (the forward's y with the conv
// bias, nullable, added in f32 as Precision::Bf16 specifies; dx), and dw [O, kh, kw, C] -> OIHW
// (n = O, hw = kh*kw) with accumulate = 1: `dw +=`, as every parameter gradient (y is not read when accumulate = 0,
// so a NaN-poisoned output is overwritten).
extern "C" __global__ void conv2d_bf16_nhwc_f32_to_nchw(u32 n, u32 c, u32 hw, u32 c_pad, const float* __restrict__ x,
                                                        const float* __restrict__ bias, u32 accumulate, float* __restrict__ y) {
    const u64 total = (u64)n * c * hw;
    FG_GRID_STRIDE(idx, total) {
        const u64 p = idx % hw, ch = (idx / hw) % c, img = idx / ((u64)hw * c);
        float v = x[(img * hw + p) * c_pad + ch];
        if (bias != nullptr) v += bias[ch];
        y[idx] = accumulate ? y[idx] + v : v;
    }
}
