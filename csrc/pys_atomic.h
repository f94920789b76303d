/* Atomics and bit helpers of the compiled hot path (GCC/Clang builtins).
 *
 * The load table's running/reserved/status counters are read and written
 * with these from kernels running without the GIL; declared for Cython in
 * csrc/_atomic.pxd. */
#ifndef PYS_ATOMIC_H
#define PYS_ATOMIC_H

#include <stdint.h>

static inline int32_t pys_load(const int32_t* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void pys_store(int32_t* p, int32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline int pys_cas(int32_t* p, int32_t expected, int32_t desired) {
    return __atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}
static inline int32_t pys_add(int32_t* p, int32_t v) { return __atomic_add_fetch(p, v, __ATOMIC_ACQ_REL); }
static inline int pys_popcount64(uint64_t x) { return __builtin_popcountll(x); }
static inline void pys_prefetch(const void* p) { __builtin_prefetch(p, 0, 1); }

#endif /* PYS_ATOMIC_H */
