/* The reverse probe's SGD epoch and validation loss, in C (loaded by ../kernel.py with ctypes).

   One call trains one epoch: for every batch of B rows of the permutation, the logits (sum of the rows of W
   of each row's active concepts, the bias row included), the softmax, the gradient (softmax − one-hot) / B,
   and torch.optim.SGD's step (momentum μ, dampening 0, coupled weight decay λ) of every row of the table.

   State. W and U = μV + λW (V: the momentum buffer), both (M + 1) × K float32, stored in tiles of QR_T columns
   ([tile][row][QR_T], the columns past K zero and kept zero). Keeping U instead of V makes a step one sparse
   sum and one pass:  v = u + g ;  w ← w − η v ;  u ← μ v + λ w  (the same update as torch.optim.SGD:
   v = μ v_old + λ w_old + g). A tile of W and of U (≈ 0.6 MB each at M = 2,500) stays in the L2 cache while
   the step runs over it.

   A step, per tile of columns: (F) the tile's logits of the batch, then their maximum and the sum of their
   exponentials; (B) the probabilities (the row's normalizer from all tiles), minus one at the label, summed
   per table row over the batch rows holding it (the batch's transposed CSR), and the step of every table row
   of the tile. Tiles are independent inside a phase: the worker threads take them from a shared counter,
   and meet at a barrier after each phase; a thread that the system has descheduled only delays the tile it
   holds. Every value is computed by the same arithmetic whichever thread computes it: the results do not
   depend on the number of threads.

   Portable C (no intrinsics); on x86-64 with GCC or Clang the hot loops are compiled for AVX-512, AVX2 and
   the baseline, chosen at load time (target_clones). */

#define _GNU_SOURCE /* syscall() */
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#define QR_ABI 1
#ifndef QR_T
#define QR_T 64          /* columns per tile: a multiple of 16 */
#endif
#define QR_V (QR_T / 16) /* vectors of 16 floats per tile row */
/* validation rows per block: a tile of W (≈ 0.6 MB at M = 2,500) and the block's concept indices (≈ 0.25 MB
   at 30 a row) stay in a 1 MB L2 cache while the block runs over the tile */
#define QR_VAL_ROWS 2048
#define QR_SPIN 256      /* barrier: pause iterations (≈ 15 µs) before sleeping */
#define QR_AHEAD 8       /* update pass: table rows of W and U fetched ahead (for writing) */

#if (defined(__x86_64__) || defined(__i386__)) && defined(__linux__) && defined(__GNUC__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define QR_HOT __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef QR_HOT
#define QR_HOT
#endif

/* 16 floats (GCC/Clang vector extension: one AVX-512 register, two AVX2 or four SSE registers); a tile row is
   four of them. vfu: the same, at any 4-byte-aligned address. */
typedef float vf __attribute__((vector_size(64)));
typedef float vfu __attribute__((vector_size(64), aligned(4)));

/* acc[0 .. QR_V) = Σ_q rows[index(q)] (a tile row of QR_T floats each): two interleaved sums (addition
   latency), added at the end. */
#define QR_GATHER(acc, count, ROW)                                                \
    do {                                                                          \
        vf s_[QR_V], t_[QR_V];                                                    \
        for (int c_ = 0; c_ < QR_V; c_++) s_[c_] = t_[c_] = (vf){0};              \
        int64_t q_ = 0, n_ = (count);                                             \
        for (; q_ + 1 < n_; q_ += 2) {                                            \
            const vfu *a_ = (const vfu *)(ROW(q_)), *b_ = (const vfu *)(ROW(q_ + 1)); \
            for (int c_ = 0; c_ < QR_V; c_++) { s_[c_] += a_[c_]; t_[c_] += b_[c_]; } \
        }                                                                         \
        if (q_ < n_) {                                                            \
            const vfu *a_ = (const vfu *)(ROW(q_));                               \
            for (int c_ = 0; c_ < QR_V; c_++) s_[c_] += a_[c_];                   \
        }                                                                         \
        for (int c_ = 0; c_ < QR_V; c_++) (acc)[c_] = s_[c_] + t_[c_];            \
    } while (0)

int qr_probe_abi_version(void) { return QR_ABI; }
int qr_probe_tile_width(void) { return QR_T; }

/* exp(x) for x ≤ 0 with a relative error below 2e-7; 0 for x < −87 (and −inf). Branch-free: vectorizes. */
static inline float qr_exp(float x) {
    const float magic = 12582912.0f; /* 1.5 · 2^23: adding it rounds to an integer */
    float xc = x < -87.0f ? -87.0f : x;
    float n = (xc * 1.44269504088896341f + magic) - magic;
    float r = xc - n * 0.693145751953125f;   /* ln 2, high part (exact product) */
    r = r - n * 1.428606765330187045e-06f;    /* ln 2, low part */
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    union { int32_t i; float f; } two_n;
    two_n.i = ((int32_t)n + 127) << 23;
    float out = p * two_n.f;
    return x < -87.0f ? 0.0f : out;
}

/* *a = elementwise maximum of *a and *b; the maximum and the sum of the 16 lanes of *v as a tree (4 levels of
   independent operations instead of a chain of 15). Pointers, not vector values: no vector crosses a call. */
typedef int32_t vi __attribute__((vector_size(64)));
static inline void qr_vmax(vf *a, const vf *b) {
    vi m = *a > *b;
    *a = (vf)(((vi)*a & m) | ((vi)*b & ~m));
}
static inline float qr_hmax(const vf *v) {
    float x[16];
    memcpy(x, v, sizeof x);
    for (int h = 8; h > 0; h /= 2)
        for (int l = 0; l < h; l++) x[l] = x[l + h] > x[l] ? x[l + h] : x[l];
    return x[0];
}
static inline float qr_hsum(const vf *v) {
    float x[16];
    memcpy(x, v, sizeof x);
    for (int h = 8; h > 0; h /= 2)
        for (int l = 0; l < h; l++) x[l] += x[l + h];
    return x[0];
}

/* ------------------------------------------------------------------------------------------- threads */
typedef struct {
    int n_threads;
    atomic_int next;      /* the next work item of the current phase */
    atomic_int arrived;   /* threads at the barrier */
    atomic_int gen;       /* barrier generation */
    atomic_int sleepers;  /* threads asleep (or about to sleep) on gen */
    atomic_int go;        /* start gate: workers wait until n_threads is final */
} Team;

static void qr_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void qr_wait(atomic_int *addr, int value) {
#ifdef __linux__
    syscall(SYS_futex, (int *)addr, FUTEX_WAIT_PRIVATE, value, NULL, NULL, 0);
#else
    (void)addr; (void)value;
    sched_yield();
#endif
}

static void qr_wake_all(atomic_int *addr) {
#ifdef __linux__
    syscall(SYS_futex, (int *)addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#else
    (void)addr;
#endif
}

/* All threads meet; the last to arrive runs serial(arg) first, then resets the work counter and releases the
   others. Waiting threads spin briefly, then sleep (a busy core is not taken from the thread still working). */
static void barrier(Team *team, void (*serial)(void *), void *arg) {
    int gen = atomic_load(&team->gen);
    if (atomic_fetch_add(&team->arrived, 1) == team->n_threads - 1) {
        if (serial) serial(arg);
        atomic_store(&team->arrived, 0);
        atomic_store(&team->next, 0);
        atomic_fetch_add(&team->gen, 1);
        if (atomic_load(&team->sleepers) > 0) qr_wake_all(&team->gen);
        return;
    }
    for (int i = 0; i < QR_SPIN; i++) {
        if (atomic_load_explicit(&team->gen, memory_order_acquire) != gen) return;
        qr_pause();
    }
    atomic_fetch_add(&team->sleepers, 1);
    while (atomic_load(&team->gen) == gen) qr_wait(&team->gen, gen);
    atomic_fetch_sub(&team->sleepers, 1);
}

typedef struct {
    void (*fn)(void *);
    void *arg;
    Team *team;
} Start;

static void *thread_main(void *p) {
    Start *s = (Start *)p;
    while (!atomic_load(&s->team->go)) qr_wait(&s->team->go, 0);
    s->fn(s->arg);
    return NULL;
}

/* fn(arg) on up to n_threads threads (this one included); team->n_threads is set to the number started. */
static void run_team(Team *team, int n_threads, void (*fn)(void *), void *arg) {
    pthread_t ids[64];
    Start start = {fn, arg, team};
    int started = 0;
    if (n_threads > 64) n_threads = 64;
    atomic_store(&team->go, 0);
    for (int t = 1; t < n_threads; t++) {
        if (pthread_create(&ids[started], NULL, thread_main, &start) != 0) break;
        started++;
    }
    team->n_threads = started + 1;
    atomic_store(&team->go, 1);
    qr_wake_all(&team->go);
    fn(arg);
    for (int t = 0; t < started; t++) pthread_join(ids[t], NULL);
}

/* ------------------------------------------------------------------------------------------- the epoch */
typedef struct {
    Team team;
    int64_t m1, k, n_tiles, n, bsz, n_steps;
    float *w, *u;
    const int64_t *indptr, *labels, *perm;
    const int32_t *indices;
    float lr, momentum, decay;
    float *proba;
    float *logit;              /* [tile][bsz][QR_T]: exponentials, then the gradient */
    float *tmax, *tsum, *scale; /* [tile][bsz] */
    float *rmax, *rinv;        /* [bsz] */
    /* three consecutive batches (slot = step mod 3): the batch's rows compacted (bptr, bidx: its CSR; blab: its
       labels) and transposed (tptr, trow: table row → batch rows) */
    int32_t *bptr[3], *bidx[3], *tptr[3], *trow[3];
    int64_t *blab[3];
    int32_t *tcur;
    int32_t *ints;             /* the allocation holding the slots and tcur */
} Epoch;

/* The columns of tile j: pad[c] is added to a tile row's logits, 0 in the table's columns and −inf in the
   tile's columns past K (they then take no part in the maximum, and their exponential is 0). */
static inline void tile_pad(vf pad[QR_V], int64_t k, int64_t j) {
    int64_t width = k - j * QR_T < QR_T ? k - j * QR_T : QR_T;
    for (int c = 0; c < QR_V; c++)
        for (int l = 0; l < 16; l++) pad[c][l] = c * 16 + l < width ? 0.0f : -INFINITY;
}

/* One row of one tile: sums (the row's logits, padded) → *max, the tile's maximum, and *sum, the sum of
   exp(logit − max) over the tile; the exponentials stored at out[0 .. QR_T) unless out is NULL. */
static inline void tile_softmax_part(const vf sums[QR_V], float *out, float *max, float *sum) {
    vf mv = sums[0];
    for (int c = 1; c < QR_V; c++) qr_vmax(&mv, &sums[c]);
    float m = qr_hmax(&mv);
    vf sv = (vf){0};
    for (int c = 0; c < QR_V; c++) {
        float x[16];
        vf y = sums[c] - m;
        memcpy(x, &y, sizeof x);
        for (int l = 0; l < 16; l++) x[l] = qr_exp(x[l]);
        memcpy(&y, x, sizeof x);
        if (out) ((vfu *)out)[c] = y;
        sv += y;
    }
    *max = m;
    *sum = qr_hsum(&sv);
}

/* (F) one tile: logits of the batch's rows, then their exponentials (shifted by the tile's row maximum). Two
   loops, not one: the exponentials of a row computed between two rows' gathers slowed the pair down more than
   they cost alone (a step 1.07–1.10× faster with the loops apart on one thread, 1.02–1.08× on two;
   benchmarks/RESULTS.md). */
QR_HOT static void forward_tile(Epoch *e, int slot, int64_t j, int64_t b) {
    const int32_t *bptr = e->bptr[slot], *bidx = e->bidx[slot];
    const float *wt = e->w + j * e->m1 * QR_T;
    float *out = e->logit + j * e->bsz * QR_T;
    vf pad[QR_V];
    tile_pad(pad, e->k, j);
    for (int64_t i = 0; i < b; i++) {
        const int32_t *idx = bidx + bptr[i];
        vf sums[QR_V];
#define QR_FWD_ROW(q) (wt + (int64_t)idx[q] * QR_T)
        QR_GATHER(sums, bptr[i + 1] - bptr[i], QR_FWD_ROW);
        for (int c = 0; c < QR_V; c++) ((vfu *)(out + i * QR_T))[c] = sums[c] + pad[c];
    }
    for (int64_t i = 0; i < b; i++) {
        vf sums[QR_V];
        for (int c = 0; c < QR_V; c++) sums[c] = ((const vfu *)(out + i * QR_T))[c];
        tile_softmax_part(sums, out + i * QR_T, &e->tmax[j * e->bsz + i], &e->tsum[j * e->bsz + i]);
    }
}

/* The batch of rows perm[first … first + b) into ``slot``: its rows' concepts and labels copied together (the
   tiles read them many times; the rows are scattered over the whole matrix), and its transposed CSR: for each
   table row, the batch rows holding it, in increasing order. */
static void prepare_batch(Epoch *e, int slot, int64_t first, int64_t b) {
    int32_t *bptr = e->bptr[slot], *bidx = e->bidx[slot], *tptr = e->tptr[slot], *trow = e->trow[slot];
    int64_t *blab = e->blab[slot];
    bptr[0] = 0;
    for (int64_t i = 0; i < b; i++) {
        int64_t row = e->perm[first + i], lo = e->indptr[row], len = e->indptr[row + 1] - lo;
        memcpy(bidx + bptr[i], e->indices + lo, (size_t)len * sizeof(int32_t));
        bptr[i + 1] = bptr[i] + (int32_t)len;
        blab[i] = e->labels[row];
    }
    memset(tptr, 0, (size_t)(e->m1 + 1) * sizeof(int32_t));
    for (int32_t q = 0; q < bptr[b]; q++) tptr[bidx[q] + 1]++;
    for (int64_t r = 0; r < e->m1; r++) tptr[r + 1] += tptr[r];
    memcpy(e->tcur, tptr, (size_t)e->m1 * sizeof(int32_t));
    for (int64_t i = 0; i < b; i++)
        for (int32_t q = bptr[i]; q < bptr[i + 1]; q++) trow[e->tcur[bidx[q]]++] = (int32_t)i;
}

typedef struct {
    Epoch *e;
    int64_t b;
} Serial;

/* Between the phases (one thread): each (tile, row)'s factor exp(tile max − row max) / row sum. */
QR_HOT static void normalizers(void *p) {
    Serial *s = (Serial *)p;
    Epoch *e = s->e;
    int64_t b = s->b, bsz = e->bsz;
    for (int64_t i = 0; i < b; i++) e->rmax[i] = e->tmax[i];
    for (int64_t j = 1; j < e->n_tiles; j++)
        for (int64_t i = 0; i < b; i++) e->rmax[i] = e->tmax[j * bsz + i] > e->rmax[i] ? e->tmax[j * bsz + i] : e->rmax[i];
    for (int64_t i = 0; i < b; i++) e->rinv[i] = 0.0f;
    for (int64_t j = 0; j < e->n_tiles; j++)
        for (int64_t i = 0; i < b; i++) {
            float f = qr_exp(e->tmax[j * bsz + i] - e->rmax[i]);
            e->scale[j * bsz + i] = f;
            e->rinv[i] += f * e->tsum[j * bsz + i];
        }
    for (int64_t i = 0; i < b; i++) e->rinv[i] = 1.0f / e->rinv[i];
    for (int64_t j = 0; j < e->n_tiles; j++)
        for (int64_t i = 0; i < b; i++) e->scale[j * bsz + i] *= e->rinv[i];
}

/* The SGD step of table row r of a tile (wt, ut: the tile's W and U, m1 rows), acc its gradient summed over the
   batch (before the 1/b factor alpha); the rows QR_AHEAD further fetched for writing. */
static inline void step_row(float *wt, float *ut, int64_t r, int64_t m1, const vf acc[QR_V], float alpha, float lr,
                            float mom, float dec) {
    vfu *w = (vfu *)(wt + r * QR_T), *u = (vfu *)(ut + r * QR_T);
    if (r + QR_AHEAD < m1) /* the hardware's stream prefetch alone leaves the pass waiting on the L3 */
        for (size_t c = 0; c < QR_T * sizeof(float); c += 64) { /* each 64-byte line of the rows */
            __builtin_prefetch((const char *)(wt + (r + QR_AHEAD) * QR_T) + c, 1, 0);
            __builtin_prefetch((const char *)(ut + (r + QR_AHEAD) * QR_T) + c, 1, 0);
        }
    for (int c = 0; c < QR_V; c++) {
        vf v = u[c] + alpha * acc[c];
        vf wn = w[c] - lr * v;
        w[c] = wn;
        u[c] = mom * v + dec * wn;
    }
}

/* (B) one tile: probabilities − one-hot, summed per table row, and the SGD step of every table row. */
QR_HOT static void backward_tile(Epoch *e, int slot, int64_t j, int64_t first, int64_t b) {
    const int32_t *tptr = e->tptr[slot], *trow = e->trow[slot];
    const int64_t *blab = e->blab[slot];
    float *g = e->logit + j * e->bsz * QR_T;
    const float *sc = e->scale + j * e->bsz;
    int64_t c0 = j * QR_T;
    for (int64_t i = 0; i < b; i++) {
        float f = sc[i];
        float *gi = g + i * QR_T;
        for (int c = 0; c < QR_T; c++) gi[c] *= f;
        int64_t label = blab[i] - c0;
        if (label >= 0 && label < QR_T) {
            e->proba[first + i] = gi[label];
            gi[label] -= 1.0f;
        }
    }
    float *wt = e->w + j * e->m1 * QR_T, *ut = e->u + j * e->m1 * QR_T;
    const float alpha = 1.0f / (float)b, lr = e->lr, mom = e->momentum, dec = e->decay;
    for (int64_t r = 0; r < e->m1; r++) {
        const int32_t *rows = trow + tptr[r];
        vf acc[QR_V];
#define QR_BWD_ROW(q) (g + (int64_t)rows[q] * QR_T)
        QR_GATHER(acc, tptr[r + 1] - tptr[r], QR_BWD_ROW);
        step_row(wt, ut, r, e->m1, acc, alpha, lr, mom, dec);
    }
}

/* What pass s does to tile j: slot and b are step s's batch (b = 0 in the last pass); prev_slot, prev and b_prev
   are step s − 1's batch, its first position in perm and its size (b_prev = 0 in the first pass). */
typedef void (*TilePass)(Epoch *e, int64_t j, int prev_slot, int64_t prev, int64_t b_prev, int slot, int64_t b);

/* The training pass of one tile: step s − 1's backward, then at once step s's forward of the same tile, while
   the tile is in the cache: each step reads and writes the table once, and the threads meet once per step. */
static void train_tile(Epoch *e, int64_t j, int prev_slot, int64_t prev, int64_t b_prev, int slot, int64_t b) {
    if (b_prev) backward_tile(e, prev_slot, j, prev, b_prev);
    if (b) forward_tile(e, slot, j, b);
}

/* The passes of an epoch on one worker thread: pass s runs ``tile`` over every tile for step s − 1's backward
   (s > 0) and step s's forward (s < n_steps), and prepares step s + 1's batch (step 0's was prepared before);
   the threads meet after each pass, the last to arrive running ``serial`` (NULL: none) on step s's batch. */
static void run_passes(Epoch *e, TilePass tile, void (*serial)(void *)) {
    Team *team = &e->team;
    for (int64_t s = 0; s <= e->n_steps; s++) {
        int64_t first = s * e->bsz, prev = first - e->bsz, next = first + e->bsz;
        int64_t b = s < e->n_steps ? (e->n - first < e->bsz ? e->n - first : e->bsz) : 0;
        int64_t b_prev = s > 0 ? (e->n - prev < e->bsz ? e->n - prev : e->bsz) : 0;
        int64_t b_next = s + 1 < e->n_steps ? (e->n - next < e->bsz ? e->n - next : e->bsz) : 0;
        for (;;) { /* item 0: the next batch; items 1 …: the tiles */
            int64_t item = atomic_fetch_add(&team->next, 1);
            if (item > e->n_tiles) break;
            if (item == 0) {
                if (b_next) prepare_batch(e, (int)((s + 1) % 3), next, b_next);
                continue;
            }
            tile(e, item - 1, (int)((s + 2) % 3), prev, b_prev, (int)(s % 3), b);
        }
        Serial arg = {e, b};
        barrier(team, b && serial ? serial : NULL, &arg);
    }
}

static void epoch_worker(void *p) { run_passes((Epoch *)p, train_tile, normalizers); }

/* The work buffers of an epoch (see qr_probe_epoch for the arguments), step 0's batch prepared. Returns 0, or
   −1 when out of memory (nothing allocated then). */
static int epoch_open(Epoch *e, float *w, float *u, int64_t m1, int64_t k, const int64_t *indptr,
                      const int32_t *indices, const int64_t *labels, const int64_t *perm, int64_t n, int64_t bsz,
                      float lr, float momentum, float decay, float *proba) {
    memset(e, 0, sizeof *e);
    e->m1 = m1; e->k = k; e->n_tiles = (k + QR_T - 1) / QR_T; e->n = n; e->bsz = bsz;
    e->n_steps = (n + bsz - 1) / bsz;
    e->w = w; e->u = u; e->indptr = indptr; e->indices = indices; e->labels = labels; e->perm = perm;
    e->lr = lr; e->momentum = momentum; e->decay = decay; e->proba = proba;
    int64_t longest = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t len = indptr[perm[i] + 1] - indptr[perm[i]];
        longest = len > longest ? len : longest;
    }
    e->logit = aligned_alloc(64, (size_t)(e->n_tiles * bsz * QR_T) * sizeof(float));
    e->tmax = malloc((size_t)(e->n_tiles * bsz) * sizeof(float) * 3 + (size_t)bsz * sizeof(float) * 2);
    /* per slot: bptr (bsz + 1), tptr (m1 + 1), bidx and trow (longest · bsz each), blab (bsz int64) */
    size_t slot_ints = (size_t)(bsz + 1 + m1 + 1 + 2 * longest * bsz + 2 * bsz + 1) & ~(size_t)1; /* even */
    e->ints = malloc((3 * slot_ints + (size_t)m1 + 8) * sizeof(int32_t));
    if (!e->logit || !e->tmax || !e->ints) {
        free(e->logit); free(e->tmax); free(e->ints);
        return -1;
    }
    for (int t = 0; t < 3; t++) {
        int32_t *base = e->ints + t * slot_ints;
        e->blab[t] = (int64_t *)base;  /* first: 8-byte aligned */
        e->bptr[t] = base + 2 * bsz;
        e->tptr[t] = e->bptr[t] + bsz + 1;
        e->bidx[t] = e->tptr[t] + m1 + 1;
        e->trow[t] = e->bidx[t] + longest * bsz;
    }
    e->tcur = e->ints + 3 * slot_ints;
    e->tsum = e->tmax + e->n_tiles * bsz;
    e->scale = e->tsum + e->n_tiles * bsz;
    e->rmax = e->scale + e->n_tiles * bsz;
    e->rinv = e->rmax + bsz;
    if (e->n_steps > 0) prepare_batch(e, 0, 0, n < bsz ? n : bsz);
    return 0;
}

static void epoch_close(Epoch *e) {
    free(e->logit); free(e->tmax); free(e->ints);
}

/* The number of threads an epoch runs on: at least one, no more than its work items. */
static int epoch_threads(const Epoch *e, int n_threads) {
    int threads = n_threads < 1 ? 1 : n_threads;
    return threads > e->n_tiles + 1 ? (int)(e->n_tiles + 1) : threads;
}

/* One epoch over the rows perm[0 … n) in batches of bsz. w, u: [n_tiles][m1][QR_T] (n_tiles = ⌈k / QR_T⌉);
   indptr (rows + 1), indices: the CSR of the concepts with the bias column (index m1 − 1 in every row);
   proba (n): the probability each row gave its label, in perm order. Returns 0, or −1 when out of memory
   (nothing changed then). */
int qr_probe_epoch(float *w, float *u, int64_t m1, int64_t k, const int64_t *indptr, const int32_t *indices,
                   const int64_t *labels, const int64_t *perm, int64_t n, int64_t bsz, float lr, float momentum,
                   float decay, float *proba, int n_threads) {
    Epoch e;
    if (epoch_open(&e, w, u, m1, k, indptr, indices, labels, perm, n, bsz, lr, momentum, decay, proba)) return -1;
    run_team(&e.team, epoch_threads(&e, n_threads), epoch_worker, &e);
    epoch_close(&e);
    return 0;
}

/* ------------------------------------------------------------------------------------------- validation */
typedef struct {
    Team team;
    int64_t m1, k, n_tiles, n, n_blocks;
    const float *w;
    const int64_t *indptr, *labels;
    const int32_t *indices;
    double *block_loss;
    atomic_int failed;
} Loss;

/* The cross-entropy summed over the rows first … first + b (b ≤ QR_VAL_ROWS), tile by tile: each row's
   maximum and sum of exponentials are carried from tile to tile (the sum rescaled when the maximum grows), so
   the logits are never stored. buf: 3 · QR_VAL_ROWS floats. */
QR_HOT static double loss_block(const Loss *l, int64_t first, int64_t b, float *buf) {
    float *rmax = buf, *rsum = buf + QR_VAL_ROWS, *rlabel = buf + 2 * QR_VAL_ROWS;
    for (int64_t j = 0; j < l->n_tiles; j++) {
        const float *wt = l->w + j * l->m1 * QR_T;
        int64_t c0 = j * QR_T;
        vf pad[QR_V];
        tile_pad(pad, l->k, j);
        for (int64_t i = 0; i < b; i++) {
            int64_t row = first + i;
            const int32_t *idx = l->indices + l->indptr[row];
            vf sums[QR_V];
            QR_GATHER(sums, l->indptr[row + 1] - l->indptr[row], QR_FWD_ROW);
            for (int c = 0; c < QR_V; c++) sums[c] += pad[c];
            int64_t label = l->labels[row] - c0;
            if (label >= 0 && label < QR_T) {
                float x[QR_T];
                memcpy(x, sums, sizeof x);
                rlabel[i] = x[label];
            }
            float m, s;
            tile_softmax_part(sums, NULL, &m, &s);
            if (j == 0) {
                rmax[i] = m;
                rsum[i] = s;
            } else if (m > rmax[i]) {
                rsum[i] = rsum[i] * qr_exp(rmax[i] - m) + s;
                rmax[i] = m;
            } else {
                rsum[i] += s * qr_exp(m - rmax[i]);
            }
        }
    }
    double total = 0.0;
    for (int64_t i = 0; i < b; i++) total += (double)rmax[i] + log((double)rsum[i]) - (double)rlabel[i];
    return total;
}

static void loss_worker(void *p) {
    Loss *l = (Loss *)p;
    float *buf = malloc((size_t)(3 * QR_VAL_ROWS) * sizeof(float));
    for (;;) {
        int64_t blk = atomic_fetch_add(&l->team.next, 1);
        if (blk >= l->n_blocks) break;
        if (!buf) { atomic_store(&l->failed, 1); continue; }
        int64_t first = blk * QR_VAL_ROWS;
        int64_t b = l->n - first < QR_VAL_ROWS ? l->n - first : QR_VAL_ROWS;
        l->block_loss[blk] = loss_block(l, first, b, buf);
    }
    free(buf);
}

/* *out = Σ over rows of the cross-entropy (nats) of the probe (w tiled as above, bias row included) on the CSR
   rows (bias column included) with labels. Returns 0, or −1 when out of memory. */
int qr_probe_loss(const float *w, int64_t m1, int64_t k, const int64_t *indptr, const int32_t *indices,
                  const int64_t *labels, int64_t n, int n_threads, double *out) {
    Loss l;
    memset(&l, 0, sizeof l);
    l.m1 = m1; l.k = k; l.n_tiles = (k + QR_T - 1) / QR_T; l.n = n;
    l.n_blocks = (n + QR_VAL_ROWS - 1) / QR_VAL_ROWS;
    l.w = w; l.indptr = indptr; l.indices = indices; l.labels = labels;
    l.block_loss = malloc((size_t)(l.n_blocks + 1) * sizeof(double));
    if (!l.block_loss) return -1;
    int threads = n_threads < 1 ? 1 : n_threads;
    if (threads > l.n_blocks) threads = (int)(l.n_blocks > 0 ? l.n_blocks : 1);
    run_team(&l.team, threads, loss_worker, &l);
    double total = 0.0;
    for (int64_t b = 0; b < l.n_blocks; b++) total += l.block_loss[b];
    free(l.block_loss);
    *out = total;
    return atomic_load(&l.failed) ? -1 : 0;
}
