/*
 * edgecnn's arm64 cost counter: a QEMU TCG plugin (plugin API version 1, as exported by QEMU 7.2).
 *
 * Counts what an emulated core executes, but only between two marker syscalls the guest makes
 * around the code to be measured: lseek(-1, MARK_BASE + 2k, 0) opens region k and
 * lseek(-1, MARK_BASE + 2k + 1, 0) closes it (fd -1, so the kernel answers EBADF and nothing
 * else happens). Interpreter start-up, imports and model loading are outside every region, which
 * is what makes the counts reproducible.
 *
 * Per region it reports:
 *   - executed instructions, by class, classified once per instruction at translation time from
 *     the A64 encoding (and added per translated block at run time, inline);
 *   - memory accesses, bytes loaded and stored (each access's real size);
 *   - misses of a simulated data-cache hierarchy (up to three levels of set-associative LRU
 *     caches with the board's sizes, 64-byte lines) and dirty lines written back from the last
 *     level: the traffic a roofline weighs against the board's DRAM bandwidth.
 *
 * Arguments: out=PATH (JSON lines, one per closed region), cache=L1SIZE:WAYS[,...] for each level
 * as l1=32768:2 l2=1048576:16 l3=0:0.  Only one guest thread is counted correctly (the counters
 * are plain inline adds): edgecnn runs the interpreter with one thread.
 *
 * The plugin API is declared here (QEMU installs no header with qemu-user); the declarations are
 * those of QEMU 7.2's include/qemu/qemu-plugin.h that this file uses.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t {
    const char *target_name;
    struct { int min; int cur; } version;
    bool system_emulation;
    union { struct { int smp_vcpus; int max_vcpus; } system; };
} qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
typedef uint32_t qemu_plugin_meminfo_t;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_mem_rw { QEMU_PLUGIN_MEM_R = 1, QEMU_PLUGIN_MEM_W, QEMU_PLUGIN_MEM_RW };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_mem_cb_t)(unsigned int vcpu_index, qemu_plugin_meminfo_t info,
                                          uint64_t vaddr, void *userdata);
typedef void (*qemu_plugin_vcpu_syscall_cb_t)(qemu_plugin_id_t id, unsigned int vcpu_index, int64_t num,
                                              uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
                                              uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8);
extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
extern void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op,
                                                     void *ptr, uint64_t imm);
extern void qemu_plugin_register_vcpu_mem_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_mem_cb_t cb,
                                             enum qemu_plugin_cb_flags flags, enum qemu_plugin_mem_rw rw,
                                             void *userdata);
extern void qemu_plugin_register_vcpu_syscall_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_syscall_cb_t cb);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
extern struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
extern const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn);
extern size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
extern unsigned int qemu_plugin_mem_size_shift(qemu_plugin_meminfo_t info);
extern bool qemu_plugin_mem_is_store(qemu_plugin_meminfo_t info);

EXPORT int qemu_plugin_version = 1;

/* ------------------------------------------------------------------ instruction classes */
enum {
    C_INT,        /* scalar integer data processing (and anything unclassified) */
    C_BRANCH,     /* branches, exceptions, system */
    C_LDST,       /* loads and stores, scalar or SIMD */
    C_SIMD_MUL,   /* SIMD integer multiply / multiply-accumulate: MUL MLA MLS [SU]MLAL [SU]MULL SQ(R)DMULH */
    C_SIMD_DOT,   /* SIMD dot product / matrix multiply-accumulate: [SU]DOT USDOT [SU]MMLA */
    C_FP_FMA,     /* floating-point multiply(-accumulate), vector or scalar: FMLA FMLS FMUL FMADD ... */
    C_SIMD_OTHER, /* every other SIMD&FP instruction: adds, shifts, permutes, conversions, moves */
    N_CLASSES
};
static const char *class_name[N_CLASSES] = {"int", "branch", "ldst", "simd_mul", "simd_dot", "fp_fma", "simd_other"};

static int simd_class(uint32_t i)
{
    uint32_t top8 = i >> 24;
    if ((top8 & 0xdf) == 0x1f) return C_FP_FMA;            /* FP data-processing, 3 source: FMADD ... */
    if (i >> 31) return C_SIMD_OTHER;                       /* other scalar FP */
    uint32_t v = (i >> 24) & 0x1f, u = (i >> 29) & 1;
    if (v == 0x0e) {                                        /* Advanced SIMD vector, register forms */
        if ((i >> 21) & 1) {
            if ((i >> 10) & 1) {                            /* three same */
                uint32_t opc = (i >> 11) & 0x1f;
                if (opc == 0x12 || (opc == 0x13 && !u) || opc == 0x16) return C_SIMD_MUL;
                if (opc == 0x19 && !u) return C_FP_FMA;     /* FMLA / FMLS */
                if (opc == 0x1b && u && !((i >> 23) & 1)) return C_FP_FMA;  /* FMUL */
                return C_SIMD_OTHER;
            }
            if (((i >> 10) & 3) == 0) {                     /* three different (long) */
                uint32_t opc = (i >> 12) & 0xf;
                if (opc >= 0x8 && opc <= 0xd) return C_SIMD_MUL;  /* [SU]MLAL [SU]MLSL [SU]MULL SQDML* */
                return C_SIMD_OTHER;
            }
            return C_SIMD_OTHER;
        }
        if (((i >> 22) & 1) && !((i >> 14) & 3) && ((i >> 10) & 1)) {  /* three same (FP16) */
            uint32_t opc = (i >> 11) & 0x7;
            if ((opc == 0x1 && !u) || (opc == 0x3 && u && !((i >> 23) & 1))) return C_FP_FMA;
            return C_SIMD_OTHER;
        }
        if (((i >> 15) & 1) && ((i >> 10) & 1)) {           /* three same extra */
            uint32_t opc = (i >> 11) & 0xf;
            if (opc == 0x2 || opc == 0x3 || opc == 0x4 || opc == 0x5) return C_SIMD_DOT;
            if (opc == 0x0 || opc == 0x1) return C_SIMD_MUL; /* SQRDMLAH / SQRDMLSH */
        }
        return C_SIMD_OTHER;
    }
    if (v == 0x0f && !((i >> 10) & 1)) {                    /* vector x indexed element */
        uint32_t opc = (i >> 12) & 0xf;
        if (!u) {
            if (opc == 0x1 || opc == 0x5 || opc == 0x9) return C_FP_FMA;
            if (opc == 0xe || opc == 0xf) return C_SIMD_DOT; /* SDOT, SUDOT/USDOT */
            if (opc == 0x2 || opc == 0x3 || opc == 0x6 || opc == 0x7 || opc == 0x8 || opc == 0xa ||
                opc == 0xb || opc == 0xc || opc == 0xd) return C_SIMD_MUL;
        } else {
            if (opc == 0x9) return C_FP_FMA;                /* FMULX */
            if (opc == 0xe) return C_SIMD_DOT;              /* UDOT */
            if (opc == 0x0 || opc == 0x2 || opc == 0x4 || opc == 0x6 || opc == 0xa || opc == 0xd ||
                opc == 0xf) return C_SIMD_MUL;
        }
    }
    return C_SIMD_OTHER;
}

/* The class of one A64 instruction word (top-level encoding groups of the Arm ARM, C4.1). */
EXPORT int edgecnn_classify(uint32_t i)
{
    uint32_t op0 = (i >> 25) & 0xf;
    if ((op0 & 0x5) == 0x4) return C_LDST;     /* x1x0: loads and stores */
    if ((op0 & 0x7) == 0x7) return simd_class(i); /* x111: SIMD and floating point */
    if ((op0 & 0xe) == 0xa) return C_BRANCH;   /* 101x: branches, exception generation, system */
    return C_INT;                              /* 100x, x101: data processing, immediate / register */
}

/* ------------------------------------------------------------------ counters */
#define MARK_BASE 0x6564676563000000ULL  /* "edgec" << 24: lseek offsets that are marks */
#define MAX_LEVELS 3
#define LINE_SHIFT 6

typedef struct {
    uint64_t cls[N_CLASSES];
    uint64_t accesses, bytes_loaded, bytes_stored;
    uint64_t misses[MAX_LEVELS];
    uint64_t writebacks;
} counters_t;

typedef struct {
    uint64_t sets, ways;
    uint64_t *tags;   /* line + 1 (0: empty); LRU order within a set, most recent first */
    uint8_t *dirty;
} cache_t;

static counters_t now, start;
static cache_t caches[MAX_LEVELS];
static int n_levels;
static bool active;
static long open_region = -1;
static FILE *out;

static bool cache_access(cache_t *c, uint64_t line, bool store, bool *evicted_dirty)
{
    uint64_t set = line & (c->sets - 1);
    uint64_t *t = c->tags + set * c->ways;
    uint8_t *d = c->dirty + set * c->ways;
    uint64_t key = line + 1;
    for (uint64_t w = 0; w < c->ways; w++) {
        if (t[w] == key) {
            uint8_t dw = d[w] | store;
            memmove(t + 1, t, w * sizeof *t);
            memmove(d + 1, d, w);
            t[0] = key;
            d[0] = dw;
            return true;
        }
    }
    *evicted_dirty = t[c->ways - 1] != 0 && d[c->ways - 1];
    memmove(t + 1, t, (c->ways - 1) * sizeof *t);
    memmove(d + 1, d, c->ways - 1);
    t[0] = key;
    d[0] = store;
    return false;
}

static void touch_line(uint64_t line, bool store)
{
    for (int k = 0; k < n_levels; k++) {
        bool wb = false;
        bool hit = cache_access(&caches[k], line, store, &wb);
        if (k == n_levels - 1 && wb) now.writebacks++;
        if (hit) return;
        now.misses[k]++;
    }
}

static void on_mem(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void *udata)
{
    (void)vcpu; (void)udata;
    if (!active) return;
    uint64_t size = 1ULL << qemu_plugin_mem_size_shift(info);
    bool store = qemu_plugin_mem_is_store(info);
    now.accesses++;
    if (store) now.bytes_stored += size; else now.bytes_loaded += size;
    uint64_t first = vaddr >> LINE_SHIFT, last = (vaddr + size - 1) >> LINE_SHIFT;
    for (uint64_t line = first; line <= last; line++) touch_line(line, store);
}

static void on_tb(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    uint64_t per[N_CLASSES] = {0};
    size_t n = qemu_plugin_tb_n_insns(tb);
    for (size_t k = 0; k < n; k++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, k);
        uint32_t word = 0;
        if (qemu_plugin_insn_size(insn) == 4) memcpy(&word, qemu_plugin_insn_data(insn), 4);
        int c = edgecnn_classify(word);
        per[c]++;
        if (c == C_LDST) qemu_plugin_register_vcpu_mem_cb(insn, on_mem, QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_MEM_RW, NULL);
    }
    for (int c = 0; c < N_CLASSES; c++)
        if (per[c]) qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &now.cls[c], per[c]);
}

static void report(long region)
{
    if (!out) return;
    uint64_t total = 0;
    fprintf(out, "{\"region\": %ld, \"classes\": {", region);
    for (int c = 0; c < N_CLASSES; c++) {
        uint64_t v = now.cls[c] - start.cls[c];
        total += v;
        fprintf(out, "%s\"%s\": %llu", c ? ", " : "", class_name[c], (unsigned long long)v);
    }
    fprintf(out, "}, \"instructions\": %llu, \"accesses\": %llu, \"bytes_loaded\": %llu, \"bytes_stored\": %llu, "
                 "\"misses\": [", (unsigned long long)total, (unsigned long long)(now.accesses - start.accesses),
            (unsigned long long)(now.bytes_loaded - start.bytes_loaded),
            (unsigned long long)(now.bytes_stored - start.bytes_stored));
    for (int k = 0; k < n_levels; k++)
        fprintf(out, "%s%llu", k ? ", " : "", (unsigned long long)(now.misses[k] - start.misses[k]));
    fprintf(out, "], \"writebacks\": %llu}\n", (unsigned long long)(now.writebacks - start.writebacks));
    fflush(out);
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1, uint64_t a2,
                       uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8)
{
    (void)id; (void)vcpu; (void)a3; (void)a4; (void)a5; (void)a6; (void)a7; (void)a8;
    /* lseek is syscall 62 on aarch64 */
    if (num != 62 || a1 != UINT64_MAX || a2 < MARK_BASE || a2 >= MARK_BASE + (1ULL << 24)) return;
    long region = (long)((a2 - MARK_BASE) >> 1);
    if (((a2 - MARK_BASE) & 1) == 0) {
        start = now;
        open_region = region;
        active = true;
    } else if (region == open_region) {
        active = false;
        report(region);
        open_region = -1;
    }
}

static void on_exit_cb(qemu_plugin_id_t id, void *udata)
{
    (void)id; (void)udata;
    if (out) fclose(out);
    out = NULL;
}

static bool parse_level(const char *v, int k)
{
    char *end;
    unsigned long long size = strtoull(v, &end, 10), ways;
    if (*end != ':') return false;
    ways = strtoull(end + 1, &end, 10);
    if (*end) return false;
    if (size == 0) return true;
    if (ways == 0 || ways > 64 || size % (ways << LINE_SHIFT)) return false;
    uint64_t sets = size / (ways << LINE_SHIFT);
    if (sets & (sets - 1)) return false;   /* a power of two */
    caches[k].sets = sets;
    caches[k].ways = ways;
    caches[k].tags = calloc(sets * ways, sizeof(uint64_t));
    caches[k].dirty = calloc(sets * ways, 1);
    if (!caches[k].tags || !caches[k].dirty) return false;
    if (k + 1 > n_levels) n_levels = k + 1;
    return true;
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    if (strcmp(info->target_name, "aarch64") != 0) {
        fprintf(stderr, "edgecnn counter: target %s is not aarch64\n", info->target_name);
        return -1;
    }
    for (int k = 0; k < argc; k++) {
        const char *a = argv[k];
        if (strncmp(a, "out=", 4) == 0) {
            out = fopen(a + 4, "w");
            if (!out) { fprintf(stderr, "edgecnn counter: cannot write %s\n", a + 4); return -1; }
        } else if (a[0] == 'l' && a[1] >= '1' && a[1] <= '0' + MAX_LEVELS && a[2] == '=') {
            if (!parse_level(a + 3, a[1] - '1')) {
                fprintf(stderr, "edgecnn counter: bad cache level %s (SIZE:WAYS, power-of-two sets)\n", a);
                return -1;
            }
        } else {
            fprintf(stderr, "edgecnn counter: unknown argument %s\n", a);
            return -1;
        }
    }
    for (int k = 0; k < n_levels; k++)
        if (!caches[k].tags) { fprintf(stderr, "edgecnn counter: cache level %d missing\n", k + 1); return -1; }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, on_exit_cb, NULL);
    return 0;
}
