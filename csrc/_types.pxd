# C types for the compiled hot path, named after the numpy dtypes they match.
#
# A kernel that takes a numpy array of dtype ``np.<name>`` declares its
# memoryview with the ctypedef of the same name (``const uint64_t[::1]`` for an
# ``np.uint64`` column, ``const intp_t[::1]`` for ``np.intp`` indices, ...).
# They are built on <stdint.h> rather than on numpy's own .pxd so that cimporting
# them never pulls in the numpy C API.
#
# Declarations only: nothing here generates code.

cimport libc.stdint as _stdint

ctypedef _stdint.int8_t int8_t        # np.int8    (small codes: a batch's top reasons)
ctypedef _stdint.uint8_t uint8_t      # np.uint8   (flags, bool-like columns)
ctypedef _stdint.int32_t int32_t      # np.int32   (counts, reason codes)
ctypedef _stdint.uint32_t uint32_t    # np.uint32  (sequence numbers)
ctypedef _stdint.int64_t int64_t      # np.int64   (timestamps in ns, large counts)
ctypedef _stdint.uint64_t uint64_t    # np.uint64  (FNV-1a-64 hashes, seeds)
ctypedef double float64_t             # np.float64 (loads, thresholds)
ctypedef Py_ssize_t intp_t            # np.intp    (indices; numpy 2 defines npy_intp as Py_ssize_t)
