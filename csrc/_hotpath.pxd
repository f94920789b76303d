# Declarations for csrc/_hotpath.pyx (built as ``pyscheduler._hotpath``).
#
# Declarations only; the definitions and their docstrings live in the .pyx.
# Compiler directives are set once, in setup.py: leave them out of here.

from _types cimport uint64_t


# FNV-1a-64 (http://www.isthe.com/chongo/tech/comp/fnv/): for each byte b,
# h = (h XOR b) * FNV64_PRIME mod 2**64, starting from FNV64_OFFSET_BASIS.
# Both functions only read ``data[0:n]``; n <= 0 hashes nothing.

cdef uint64_t fnv1a64_update(uint64_t h, const unsigned char* data, Py_ssize_t n) noexcept nogil
cdef uint64_t fnv1a64_bytes(const unsigned char* data, Py_ssize_t n) noexcept nogil
