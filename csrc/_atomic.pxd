# Atomics for the load table's counters and two bit helpers, implemented in
# csrc/pys_atomic.h (GCC/Clang builtins). Declarations only.

from _types cimport int32_t, uint64_t


cdef extern from "pys_atomic.h" nogil:
    int32_t pys_load(const int32_t* p)                               # acquire load
    void pys_store(int32_t* p, int32_t v)                            # release store
    bint pys_cas(int32_t* p, int32_t expected, int32_t desired)      # compare-and-swap, acq_rel
    int32_t pys_add(int32_t* p, int32_t v)                           # add, return the new value
    int pys_popcount64(uint64_t x)
    void pys_prefetch(const void* p)                                 # read, low temporal locality
