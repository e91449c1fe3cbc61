/* K-means distance kernels for CPUs with AVX-512 BF16 (qrprobe.engine.kmeans_kernel loads this file).
 *
 * Products of bf16 rows and bf16 centroids, accumulated and returned in float32 (vdpbf16ps), reduced on the
 * fly to what Lloyd's assignment needs: per (row, centroid group) the smallest and second-smallest value of
 *     v_j = csq[j] - 2 x . c_j          (= ||x - c_j||^2 - ||x||^2 up to rounding)
 * and the slot of the smallest. No N x K distance matrix is written.
 *
 * Layouts (bf16 stored as uint16):
 *   x      rows of length 2*d2 at stride ldx (elements); rows[] selects which ones (any order).
 *   cpack  centroid groups of W slots (W = 16, 32, 48 or 64): cpack[((g*d2 + p)*W + w)*2 + e] holds element
 *          2p+e of slot g*W+w, so one 64-byte load gives 16 slots x one pair of dimensions.
 *   crow   the same centroids row-major (slot x 2*d2), for single dot products.
 *   need   n x G bytes, 1 where (row, group) must be computed; NULL: every group.
 *   c      float32 centroids row-major at stride ldc, for the float64 check (qr_exact_dots).
 *
 * Accumulation: each output lane sums its 2*d2 exact bf16 products in float32 in dimension order (two
 * roundings per vdpbf16ps at most); the caller's error bound assumes no more than that.
 */
#include "kmeans_bf16.h"

int qr_cpu_supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512bf16");
}

int qr_abi_version(void) { return 7; }

typedef int32_t pair_t __attribute__((may_alias, aligned(2)));

/* acc[r][v] = x_r . (16 slots of vector v), over all d2 pairs, for MR rows x V vectors. */
static inline __attribute__((always_inline)) TGT void products(
    const uint16_t *const *xr, const uint16_t *cp, int64_t d2, int64_t W, int MR, int V, __m512 acc[12][4])
{
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < V; v++) acc[r][v] = _mm512_setzero_ps();
    for (int64_t p = 0; p < d2; p++) {
        const uint16_t *bp = cp + p * W * 2;
        __m512i b[4];
        for (int v = 0; v < V; v++) b[v] = _mm512_loadu_si512((const void *)(bp + v * 32));
        for (int r = 0; r < MR; r++) {
            __m512i a = _mm512_set1_epi32(*(const pair_t *)(xr[r] + 2 * p));
            for (int v = 0; v < V; v++) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], (__m512bh)b[v], (__m512bh)a);
        }
    }
}

/* One vector of 16 slots: each row pair is used by a single product, so the broadcast is folded into it as an
   embedded {1to16} memory operand (compilers do not fold it, and a separate broadcast costs a vector uop per
   product, which halves the speed). Twelve named accumulators keep everything in registers. */
#define DPB(c, r) __asm__("vdpbf16ps %[m]%{1to16%}, %[b], %[acc]" : [acc] "+v"(c) : [b] "v"(bv), \
                          [m] "m"(*(const pair_t *)(xr[r] + 2 * p)))
static inline __attribute__((always_inline)) TGT void products_12_1(
    const uint16_t *const *xr, const uint16_t *cp, int64_t d2, __m512 acc[12][4])
{
    __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0, c8 = c0,
           c9 = c0, c10 = c0, c11 = c0;
    for (int64_t p = 0; p < d2; p++) {
        __m512 bv = _mm512_castsi512_ps(_mm512_loadu_si512((const void *)(cp + p * 32)));
        DPB(c0, 0); DPB(c1, 1); DPB(c2, 2); DPB(c3, 3); DPB(c4, 4); DPB(c5, 5);
        DPB(c6, 6); DPB(c7, 7); DPB(c8, 8); DPB(c9, 9); DPB(c10, 10); DPB(c11, 11);
    }
    acc[0][0] = c0; acc[1][0] = c1; acc[2][0] = c2; acc[3][0] = c3; acc[4][0] = c4; acc[5][0] = c5;
    acc[6][0] = c6; acc[7][0] = c7; acc[8][0] = c8; acc[9][0] = c9; acc[10][0] = c10; acc[11][0] = c11;
}

/* Per valid row: the group's min, its slot, and second min of v = csq - 2 acc over V vectors of 16 slots. */
static inline __attribute__((always_inline)) TGT void reduce(
    __m512 acc[12][4], const float *csq, int V, const int64_t *out_at, int nvalid, float *m1, int32_t *a1,
    float *m2, int64_t slot0)
{
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512 inf = _mm512_set1_ps(INFINITY), two = _mm512_set1_ps(2.0f);
    for (int r = 0; r < nvalid; r++) {
        __m512 b1 = inf, b2 = inf;
        __m512i i1 = _mm512_setzero_si512();
        for (int v = 0; v < V; v++) {
            __m512 val = _mm512_fnmadd_ps(two, acc[r][v], _mm512_loadu_ps(csq + v * 16));
            __mmask16 lt = _mm512_cmp_ps_mask(val, b1, _CMP_LT_OQ);
            b2 = _mm512_min_ps(b2, _mm512_max_ps(val, b1));
            b1 = _mm512_mask_mov_ps(b1, lt, val);
            i1 = _mm512_mask_mov_epi32(i1, lt, _mm512_add_epi32(lane, _mm512_set1_epi32(v * 16)));
        }
        float best = _mm512_reduce_min_ps(b1);
        __mmask16 at = _mm512_cmp_ps_mask(b1, _mm512_set1_ps(best), _CMP_EQ_OQ);
        int l = at ? __builtin_ctz(at) : 0;
        int32_t ibuf[16];
        float b2buf[16];
        _mm512_storeu_si512((void *)ibuf, i1);
        _mm512_storeu_ps(b2buf, b2);
        float second = _mm512_reduce_min_ps(_mm512_mask_mov_ps(b1, (__mmask16)(1u << l), inf));
        if (b2buf[l] < second) second = b2buf[l];
        int64_t o = out_at[r];
        m1[o] = best;
        a1[o] = (int32_t)(slot0 + ibuf[l]);
        m2[o] = second;
    }
}

static inline __attribute__((always_inline)) TGT void tile(
    const uint16_t *const *xr, const uint16_t *cp, int64_t d2, int64_t W, const float *csq, int MR, int V,
    const int64_t *out_at, int nvalid, float *m1, int32_t *a1, float *m2, int64_t slot0)
{
    __m512 acc[12][4];
    if (MR == 12 && V == 1)
        products_12_1(xr, cp, d2, acc);
    else
        products(xr, cp, d2, W, MR, V, acc);
    reduce(acc, csq, V, out_at, nvalid, m1, a1, m2, slot0);
}

#define TILE(MRv, Vv)                                                                                          \
    static TGT void tile_##MRv##_##Vv(const uint16_t *const *xr, const uint16_t *cp, int64_t d2, int64_t W,     \
                                      const float *csq, const int64_t *out_at, int nv, float *m1, int32_t *a1, \
                                      float *m2, int64_t slot0) {                                               \
        tile(xr, cp, d2, W, csq, MRv, Vv, out_at, nv, m1, a1, m2, slot0);                                       \
    }
TILE(12, 1)
TILE(8, 2)
TILE(8, 3)
TILE(6, 4)

int pick_tile(int64_t W, int *MR, tile_fn *fn)
{
    switch (W) {
    case 16: *MR = 12; *fn = tile_12_1; return 0;
    case 32: *MR = 8; *fn = tile_8_2; return 0;
    case 48: *MR = 8; *fn = tile_8_3; return 0;
    case 64: *MR = 6; *fn = tile_6_4; return 0;
    default: return -1;
    }
}

/* Entries e of one block (their x rows xrow[e]) against every group g with need[e*G + g] (NULL: all):
   m1/a1/m2[e*G + g]. The entries that need a group are computed together, MR at a time. Returns the pairs
   computed; *padded grows by the pairs multiplied (tiles are MR entries, the last one padded). */
TGT int64_t block_groups(const uint16_t *x, int64_t ldx, const int64_t *xrow, int64_t nb,
                                const uint16_t *cpack, const float *csq, int64_t d2, int64_t G, int64_t W, int MR,
                                tile_fn fn, const uint8_t *need, float *m1, int32_t *a1, float *m2,
                                int64_t *padded)
{
    int64_t list[BLOCK_ROWS], pairs = 0;
    for (int64_t g = 0; g < G; g++) {
        int64_t cnt = 0;
        for (int64_t e = 0; e < nb; e++)
            if (!need || need[e * G + g]) list[cnt++] = e;
        pairs += cnt;
        *padded += (cnt + MR - 1) / MR * MR;
        for (int64_t t0 = 0; t0 < cnt; t0 += MR) {
            int nv = (int)(cnt - t0 < MR ? cnt - t0 : MR);
            const uint16_t *xr[12];
            int64_t out_at[12];
            for (int r = 0; r < MR; r++) {
                int64_t e = list[t0 + (r < nv ? r : nv - 1)];
                xr[r] = x + xrow[e] * ldx;
                out_at[r] = e * G + g;
            }
            fn(xr, cpack + g * d2 * W * 2, d2, W, csq + g * W, out_at, nv, m1, a1, m2, g * W);
        }
    }
    return pairs;
}

/* For every listed row and every needed group g: m1/a1/m2[row*G + g] = min, its slot, second min of v over
   the group's W slots; done[row*G + g] = 1. Returns 0, or -1 for an unsupported W. */
TGT int qr_group_min2(const uint16_t *x, int64_t ldx, const int64_t *rows, int64_t n, const uint16_t *cpack,
                      const float *csq, int64_t d2, int64_t G, int64_t W, const uint8_t *need, float *m1,
                      int32_t *a1, float *m2, uint8_t *done)
{
    int MR;
    tile_fn fn;
    if (pick_tile(W, &MR, &fn)) return -1;
    for (int64_t b0 = 0; b0 < n; b0 += BLOCK_ROWS) {
        int64_t nb = n - b0 < BLOCK_ROWS ? n - b0 : BLOCK_ROWS;
        int64_t padded = 0;
        block_groups(x, ldx, rows + b0, nb, cpack, csq, d2, G, W, MR, fn, need ? need + b0 * G : 0,
                     m1 + b0 * G, a1 + b0 * G, m2 + b0 * G, &padded);
        if (done)
            for (int64_t i = b0 * G; i < (b0 + nb) * G; i++) done[i] = !need || need[i];
    }
    return 0;
}

TGT float own_value(const uint16_t *xp, const uint16_t *cp, int64_t d2, float csq)
{
    __m512 acc = _mm512_setzero_ps();
    int64_t p = 0;
    for (; p + 16 <= d2; p += 16)
        acc = _mm512_dpbf16_ps(acc, (__m512bh)_mm512_loadu_si512((const void *)(xp + 2 * p)),
                               (__m512bh)_mm512_loadu_si512((const void *)(cp + 2 * p)));
    if (p < d2) {
        __mmask16 m = (__mmask16)((1u << (d2 - p)) - 1);
        acc = _mm512_dpbf16_ps(acc, (__m512bh)_mm512_maskz_loadu_epi32(m, xp + 2 * p),
                               (__m512bh)_mm512_maskz_loadu_epi32(m, cp + 2 * p));
    }
    return csq - 2.0f * _mm512_reduce_add_ps(acc);
}

/* out[i] = csq[slot[i]] - 2 x_rows[i] . crow[slot[i]], accumulated as in qr_group_min2. */
TGT void qr_own(const uint16_t *x, int64_t ldx, const int64_t *rows, int64_t n, const uint16_t *crow,
                const float *csq, int64_t d2, const int64_t *slot, float *out)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = own_value(x + rows[i] * ldx, crow + slot[i] * 2 * d2, d2, csq[slot[i]]);
}

TGT double exact_dot(const uint16_t *xp, int is_fp16, const float *cp, int64_t d)
{
    __m512d acc0 = _mm512_setzero_pd(), acc1 = _mm512_setzero_pd();
    for (int64_t p = 0; p < d; p += 16) {
        __mmask16 m16 = d - p >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (d - p)) - 1);
        __m256i raw = _mm256_maskz_loadu_epi16(m16, xp + p);
        __m512 xv = is_fp16 ? _mm512_cvtph_ps(raw)
                            : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
        __m512 cv = _mm512_maskz_loadu_ps(m16, cp + p);
        acc0 = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(xv)),
                               _mm512_cvtps_pd(_mm512_castps512_ps256(cv)), acc0);
        acc1 = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(xv), 1))),
                               _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(cv), 1))),
                               acc1);
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(acc0, acc1));
}

/* out[i] = x_{xrow[i]} . c_{cid[i]} in float64: each bf16 (or fp16, is_fp16) x float32 product is exact in
   float64; the sum of d of them rounds as a float64 sum. For the exact check of close candidates. */
TGT void qr_exact_dots(const uint16_t *x, int64_t ldx, int is_fp16, const int64_t *xrow, const float *c,
                       int64_t ldc, const int64_t *cid, int64_t m, int64_t d, double *out)
{
    for (int64_t i = 0; i < m; i++) out[i] = exact_dot(x + xrow[i] * ldx, is_fp16, c + cid[i] * ldc, d);
}

static inline TGT __m512 load16_as_f32(const uint16_t *p, int is_fp16, __mmask16 m)
{
    __m256i raw = _mm256_maskz_loadu_epi16(m, p);
    return is_fp16 ? _mm512_cvtph_ps(raw) : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
}

/* Columns [c0, c1) of the int64 fixed-point cluster sums (K x ldsum): for each listed row i, subtract row
   x_{xrow[i]} * 2^24 from sums[old[i]] (old may be NULL) and add it to sums[new[i]]. Exact: every stored value
   times 2^24 is an integer below 2^40. Threads split the columns, so no two write the same place. */
TGT void qr_sums_move(const uint16_t *x, int64_t ldx, int is_fp16, const int64_t *xrow, int64_t n,
                      const int64_t *old, const int64_t *new_, int64_t *sums, int64_t ldsum, int64_t c0, int64_t c1)
{
    const __m512 scale = _mm512_set1_ps(0x1p24f);
    for (int64_t i = 0; i < n; i++) {
        const uint16_t *xp = x + xrow[i] * ldx;
        int64_t *to = sums + new_[i] * ldsum, *from = old ? sums + old[i] * ldsum : 0;
        for (int64_t p = c0; p < c1; p += 16) {
            __mmask16 m = c1 - p >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (c1 - p)) - 1);
            __m512 v = _mm512_mul_ps(load16_as_f32(xp + p, is_fp16, m), scale);
            __m512i lo = _mm512_cvtps_epi64(_mm512_castps512_ps256(v));
            __m512i hi = _mm512_cvtps_epi64(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
            __mmask8 ml = (__mmask8)(m & 0xFF), mh = (__mmask8)(m >> 8);
            _mm512_mask_storeu_epi64(to + p, ml, _mm512_add_epi64(_mm512_maskz_loadu_epi64(ml, to + p), lo));
            _mm512_mask_storeu_epi64(to + p + 8, mh, _mm512_add_epi64(_mm512_maskz_loadu_epi64(mh, to + p + 8), hi));
            if (from) {
                _mm512_mask_storeu_epi64(from + p, ml, _mm512_sub_epi64(_mm512_maskz_loadu_epi64(ml, from + p), lo));
                _mm512_mask_storeu_epi64(from + p + 8, mh,
                                         _mm512_sub_epi64(_mm512_maskz_loadu_epi64(mh, from + p + 8), hi));
            }
        }
    }
}

/* Per row: xsq[i] = sum of squares in float64 (exact products), and err[i] = |x - bf16(x)| (float64) when the
   rows are float16 (err may be NULL). */
TGT void qr_row_stats(const uint16_t *x, int64_t ldx, int is_fp16, int64_t n, int64_t d, double *xsq, double *err)
{
    for (int64_t i = 0; i < n; i++) {
        const uint16_t *xp = x + i * ldx;
        __m512d s0 = _mm512_setzero_pd(), s1 = s0, e0 = s0, e1 = s0;
        for (int64_t p = 0; p < d; p += 16) {
            __mmask16 m = d - p >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (d - p)) - 1);
            __m512 v = load16_as_f32(xp + p, is_fp16, m);
            __m512d v0 = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
            __m512d v1 = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
            s0 = _mm512_fmadd_pd(v0, v0, s0);
            s1 = _mm512_fmadd_pd(v1, v1, s1);
            if (err) {
                /* bf16 rounding of v (round to nearest even), widened back to float32 */
                __m512 r = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(
                    (__m256i)_mm512_cvtneps_pbh(v)), 16));
                __m512 dv = _mm512_sub_ps(v, r); /* exact: v and r share the exponent range */
                __m512d d0 = _mm512_cvtps_pd(_mm512_castps512_ps256(dv));
                __m512d d1 = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(dv), 1)));
                e0 = _mm512_fmadd_pd(d0, d0, e0);
                e1 = _mm512_fmadd_pd(d1, d1, e1);
            }
        }
        xsq[i] = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
        if (err) err[i] = sqrt(_mm512_reduce_add_pd(_mm512_add_pd(e0, e1)));
    }
}
