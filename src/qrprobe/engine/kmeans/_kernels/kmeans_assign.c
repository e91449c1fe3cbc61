/* One assignment pass of the exact 16-bit K-means with Yinyang bounds, fused (qrprobe.engine.kmeans_kernel).
 *
 * The same decisions as the torch path in qrprobe/engine/kmeans_exact.py (see there and kmeans_bounds.py for
 * the reasoning), done per block of rows so that no (rows x groups) array leaves the cache:
 *   1. bounded pass: move the bounds by the centroid drift; a row whose upper bound is below every group's
 *      lower bound keeps its centroid; else its own distance is recomputed (tightening the upper bound) and
 *      the groups whose lower bound is not above it are marked;
 *   2. the marked (row, group) pairs are multiplied (bf16, float32 accumulation: block_groups);
 *   3. each row is settled from the approximate minima and their error bounds E = |x| A_g + B_g (+ the
 *      rounding of a float16 row to bf16, |x - bf16(x)| C_g), or, when
 *      two candidates are too close to call, by float64 distances of every candidate within reach (ties
 *      within 1e-10 (|x|^2 + |c|^2) to the lowest centroid id); its bounds are then reset.
 * Rounding: float32 bounds are rounded outward (lower bounds down, upper bounds up).
 */
#include <stdlib.h>
#include <time.h>

#include "kmeans_bf16.h"

typedef struct {
    const uint16_t *x;       /* stored rows, bf16, stride ldx */
    int64_t ldx;
    const int64_t *rows;     /* this run's row -> stored row */
    const uint16_t *cpack;   /* grouped centroids, see kmeans_bf16.c */
    const float *csq_slot;   /* float32 |c|^2 per slot, inf for padding */
    const uint16_t *crow;    /* bf16 centroids per slot, row-major */
    const int64_t *slot_of;  /* centroid -> slot */
    const int64_t *slot_ids; /* slot -> centroid, -1 for padding */
    const int64_t *group_of; /* centroid -> group */
    const float *c32;        /* float32 centroids (K x d), stride ldc, for the float64 check */
    int64_t ldc;
    const double *csq64;     /* float64 |c|^2 per centroid */
    const double *xsq;       /* float64 |x|^2 per run row */
    const double *norm;      /* |x| per run row */
    const double *xerr;      /* |x - bf16(x)| per run row for float16 rows; NULL for bf16 rows */
    const double *ga, *gb, *gc; /* group error coefficients (G): E = |x| ga + gb + xerr gc */
    const double *oa, *ob, *oc; /* the same per centroid (K), for the own value */
    const float *drift;      /* per centroid, rounded up; NULL for a full pass */
    const float *gdrift;     /* per group, rounded up */
    int64_t *labels;         /* per run row, in/out */
    float *ub;               /* per run row, in/out */
    float *lb;               /* per run row x G, in/out */
    int64_t d, d2, G, W;
    int64_t is_fp16;         /* rows are float16: rounded to bf16 (into a block buffer) before multiplying */
} qr_assign_args;

static inline int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static inline float down32(double t) { return (float)(t * (1.0 - 0x1p-20)); }
static inline float up32(double t) { return (float)(t * (1.0 + 0x1p-20)); }

static inline double lower_dist(double xsq, double v, double err)
{
    double d2 = xsq + v - err - 1e-9 * (xsq + fabs(v) + err);
    return d2 > 0 ? sqrt(d2) : 0.0;
}

static inline double upper_dist(double xsq, double v, double err)
{
    double d2 = xsq + v + err + 1e-9 * (xsq + fabs(v) + err);
    return d2 > 0 ? sqrt(d2) : 0.0;
}

typedef struct {
    float *m1, *m2;
    int32_t *a1;
    uint8_t *need;
    int64_t *xrow, *cand;
    double *dist;
    uint16_t *xbuf; /* float16 rows rounded to bf16, one per block entry */
    int64_t n_cand; /* candidates checked in float64 */
} scratch;

static inline double row_err(const qr_assign_args *a, int64_t r) { return a->xerr ? a->xerr[r] : 0.0; }

static inline TGT void fp16_to_bf16(const uint16_t *src, uint16_t *dst, int64_t n)
{
    for (int64_t p = 0; p < n; p += 16) {
        __mmask16 m = n - p >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - p)) - 1);
        __m512 v = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, src + p));
        _mm256_mask_storeu_epi16(dst + p, m, (__m256i)_mm512_cvtneps_pbh(v));
    }
}

/* Settle entry e (run row r). Returns 1 when the float64 check was needed. */
static TGT int settle(const qr_assign_args *a, scratch *s, int64_t e, int64_t r, int has_own, float own_v,
                      double own_e)
{
    const int64_t G = a->G, W = a->W;
    const float *m1 = s->m1 + e * G, *m2 = s->m2 + e * G;
    const int32_t *a1 = s->a1 + e * G;
    const uint8_t *done = s->need + e * G;
    const double xs = a->xsq[r], nr = a->norm[r], xe = row_err(a, r);
    const int64_t own_lab = a->labels[r];
    double best = INFINITY, best_e = INFINITY;
    int64_t label = -1;
    for (int64_t g = 0; g < G; g++)
        if (done[g] && m1[g] < best) {
            best = m1[g];
            best_e = nr * a->ga[g] + a->gb[g] + xe * a->gc[g];
            label = a->slot_ids[a1[g]];
        }
    if (has_own && (double)own_v < best) {
        best = own_v;
        best_e = own_e;
        label = own_lab;
    }
    const double reach = best + best_e;
    int settled = 1;
    for (int64_t g = 0; g < G && settled; g++) {
        if (!done[g]) continue;
        double err = nr * a->ga[g] + a->gb[g] + xe * a->gc[g];
        double low = (a->slot_ids[a1[g]] == label ? (double)m2[g] : (double)m1[g]) - err;
        if (low <= reach) settled = 0;
    }
    if (has_own && own_lab != label && (double)own_v - own_e <= reach) settled = 0;
    double upper;
    const uint16_t *xp = a->x + a->rows[r] * a->ldx;
    if (settled) {
        upper = upper_dist(xs, best, best_e);
    } else {
        int64_t nc = 0;
        for (int64_t g = 0; g < G; g++) {
            if (!done[g]) continue;
            double err = nr * a->ga[g] + a->gb[g] + xe * a->gc[g];
            if ((double)m2[g] - err <= reach) {
                for (int64_t w = 0; w < W; w++)
                    if (a->slot_ids[g * W + w] >= 0) s->cand[nc++] = a->slot_ids[g * W + w];
            } else if ((double)m1[g] - err <= reach) {
                s->cand[nc++] = a->slot_ids[a1[g]];
            }
        }
        s->cand[nc++] = label;
        if (has_own) s->cand[nc++] = own_lab;
        s->n_cand += nc;
        double dmin = INFINITY;
        for (int64_t i = 0; i < nc; i++) {
            int64_t j = s->cand[i];
            s->dist[i] = xs - 2.0 * exact_dot(xp, (int)a->is_fp16, a->c32 + j * a->ldc, a->d) + a->csq64[j];
            if (s->dist[i] < dmin) dmin = s->dist[i];
        }
        int64_t chosen = INT64_MAX;
        double dchosen = INFINITY;
        for (int64_t i = 0; i < nc; i++) {
            int64_t j = s->cand[i];
            if (s->dist[i] <= dmin + 1e-10 * (xs + a->csq64[j]) && j < chosen) {
                chosen = j;
                dchosen = s->dist[i];
            }
        }
        label = chosen;
        double d2 = dchosen + 1e-9 * (xs + a->csq64[chosen]);
        upper = d2 > 0 ? sqrt(d2) : 0.0;
    }
    float *lb = a->lb + r * G;
    for (int64_t g = 0; g < G; g++) {
        if (!done[g]) continue;
        double err = nr * a->ga[g] + a->gb[g] + xe * a->gc[g];
        double low = (a->slot_ids[a1[g]] == label ? (double)m2[g] : (double)m1[g]) - err;
        lb[g] = down32(lower_dist(xs, low, 0.0));
    }
    if (has_own && label != own_lab) {
        /* the old centroid is now one of the others of its group */
        int64_t go = a->group_of[own_lab];
        if (!done[go]) {
            float low = down32(lower_dist(xs, own_v, own_e));
            if (low < lb[go]) lb[go] = low;
        }
    }
    a->ub[r] = up32(upper);
    a->labels[r] = label;
    return !settled;
}

/* Assign run rows [lo, hi). stats[0..3] += rows multiplied, (row, group) pairs needed, rows checked in
   float64, (row, group) pairs multiplied (needed pairs plus the padding of partial tiles); stats[4..6] +=
   nanoseconds spent on bounds and own distances, on products, on settling (with the float64 check). Returns 0, -1 for an unsupported W, -2 when out of memory. */
TGT int qr_assign(const qr_assign_args *a, int64_t lo, int64_t hi, int64_t *stats)
{
    int MR;
    tile_fn fn;
    if (pick_tile(a->W, &MR, &fn)) return -1;
    const int64_t G = a->G;
    scratch s;
    s.n_cand = 0;
    s.m1 = malloc(sizeof(float) * BLOCK_ROWS * G);
    s.m2 = malloc(sizeof(float) * BLOCK_ROWS * G);
    s.a1 = malloc(sizeof(int32_t) * BLOCK_ROWS * G);
    s.need = malloc(BLOCK_ROWS * G);
    s.xrow = malloc(sizeof(int64_t) * BLOCK_ROWS);
    s.cand = malloc(sizeof(int64_t) * (G * a->W + 2));
    s.dist = malloc(sizeof(double) * (G * a->W + 2));
    s.xbuf = a->is_fp16 ? malloc(sizeof(uint16_t) * BLOCK_ROWS * 2 * a->d2) : 0;
    int64_t act[BLOCK_ROWS];
    float own_v[BLOCK_ROWS];
    double own_e[BLOCK_ROWS];
    int rc = 0;
    if (!s.m1 || !s.m2 || !s.a1 || !s.need || !s.xrow || !s.cand || !s.dist || (a->is_fp16 && !s.xbuf)) {
        rc = -2;
        goto out;
    }
    for (int64_t b0 = lo; b0 < hi; b0 += BLOCK_ROWS) {
        int64_t b1 = hi - b0 < BLOCK_ROWS ? hi : b0 + BLOCK_ROWS, n_act = 0, t0 = now_ns();
        for (int64_t r = b0; r < b1; r++) {
            uint8_t *need = s.need + n_act * G;
            const uint16_t *xr = a->x + a->rows[r] * a->ldx;
            if (a->is_fp16) {
                fp16_to_bf16(xr, s.xbuf + n_act * 2 * a->d2, 2 * a->d2);
                xr = s.xbuf + n_act * 2 * a->d2;
            }
            s.xrow[n_act] = a->is_fp16 ? n_act : a->rows[r];
            if (!a->drift) {
                memset(need, 1, G);
                act[n_act++] = r;
                continue;
            }
            const int64_t lab = a->labels[r];
            float *lb = a->lb + r * G;
            float u = (a->ub[r] + a->drift[lab]) * (1.0f + 0x1p-22f);
            float lmin = INFINITY;
            for (int64_t g = 0; g < G; g++) {
                float v = (lb[g] - a->gdrift[g]) * (1.0f - 0x1p-22f);
                lb[g] = v > 0 ? v : 0.0f;
                if (lb[g] < lmin) lmin = lb[g];
            }
            a->ub[r] = u;
            if (u < lmin) continue;
            const int64_t slot = a->slot_of[lab];
            const float v = own_value(xr, a->crow + slot * 2 * a->d2, a->d2, a->csq_slot[slot]);
            const double e = a->norm[r] * a->oa[lab] + a->ob[lab] + row_err(a, r) * a->oc[lab];
            u = up32(upper_dist(a->xsq[r], v, e));
            a->ub[r] = u;
            int any = 0;
            for (int64_t g = 0; g < G; g++) any |= (need[g] = lb[g] <= u);
            if (!any) continue;
            own_v[n_act] = v;
            own_e[n_act] = e;
            act[n_act++] = r;
        }
        int64_t t1 = now_ns();
        stats[4] += t1 - t0;
        if (!n_act) continue;
        for (int64_t i = 0; i < n_act * G; i++) s.m1[i] = s.m2[i] = INFINITY;
        stats[0] += n_act;
        stats[1] += block_groups(a->is_fp16 ? s.xbuf : a->x, a->is_fp16 ? 2 * a->d2 : a->ldx, s.xrow, n_act,
                                 a->cpack, a->csq_slot, a->d2, G, a->W, MR, fn, s.need, s.m1, s.a1, s.m2,
                                 &stats[3]);
        int64_t t2 = now_ns();
        stats[5] += t2 - t1;
        for (int64_t e = 0; e < n_act; e++)
            stats[2] += settle(a, &s, e, act[e], a->drift != 0, own_v[e], own_e[e]);
        stats[6] += now_ns() - t2;
    }
out:
    stats[7] += s.n_cand;
    free(s.m1);
    free(s.m2);
    free(s.a1);
    free(s.need);
    free(s.xrow);
    free(s.cand);
    free(s.dist);
    free(s.xbuf);
    return rc;
}
