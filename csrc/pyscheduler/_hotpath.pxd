# Declarations of the compiled module's classes (their C attributes and C
# methods) and of the records they keep; the definitions are in _hotpath.pyx
# and the files it includes (_sessions.pxi, _dispatch.pxi). Declarations only.

cimport cython
from cpython.ref cimport PyObject

from _kernel_codes cimport IntBuf, JobIn, JobOut, NodeLoad, Survivors
from _types cimport float64_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t


cdef enum:
    # counters, by index; C_FAILED_REASON + reason code, and + N_REASON_SLOTS - 1 for "no reason"
    C_SELECTIONS = 0
    C_FAILED = 1
    C_COMMITS = 2
    C_RELEASES = 3
    C_EXPIRED = 4
    C_FAILED_REASON = 5
    N_REASON_SLOTS = 15               # 14 reason codes + "None" (nothing was rejected)
    C_STARTED = 20                    # decisions begun / finished (a decision in flight may
    C_FINISHED = 21                   # hold a reservation it has not counted yet)
    N_COUNTERS = 22
    N_JOB_FIELDS = 10                 # len(JOB_FIELDS)
    N_SELECTION_SLOTS = 9             # len(SELECTION_SLOTS)


cdef struct Reservation:
    int64_t serial       # registration serial of the node the place was taken on
    float64_t created    # clock seconds when taken; expired when now - created > ttl
    int32_t slot         # load slot holding the place; -1 while the entry is free
    uint32_t seq         # bumped on every reuse of the entry (low 20 bits are in the token)
    int32_t next_free    # free-list link (-1: end)
    int32_t _pad


cdef struct SessionSlot:
    uint64_t key                      # FNV-1a-64 of the session id's UTF-8 bytes
    uint64_t key2                     # the same bytes from another offset basis (both must match)
    uint64_t pair_key                 # FNV-1a-64 of src, a 0 byte, tgt: the pair the binding is for
    float64_t last_seen               # clock seconds of the last use
    int32_t types                     # ServiceType mask the binding is for
    int32_t bound_index               # pool index of bound_pool in generation checked
    int64_t bound_pool                # pool id bound to, -1: none
    int64_t checked                   # snapshot version the binding was last checked against, -1: never
    int32_t prev, next                # LRU list links (-1: none); next is also the free-list link
    int32_t last_node                 # index into last_names, or -1: last_names is the node id itself
    PyObject* last_names              # owned: the node ids of the generation last picked from, or NULL


@cython.final
cdef class LoadTable:
    cdef NodeLoad** chunks     # MAX_CHUNKS pointers; the first n_chunks are allocated
    cdef Py_ssize_t n_chunks
    cdef NodeLoad* at(self, Py_ssize_t slot) noexcept nogil
    cdef NodeLoad* _checked(self, Py_ssize_t slot) except NULL


@cython.final
cdef class CompiledSnapshot:
    cdef readonly LoadTable loads
    cdef readonly Py_ssize_t n_nodes, n_pools, n_langs, words
    # languages with ids below n_pool_langs occur in some pool; the index covers only them
    cdef readonly Py_ssize_t n_pool_langs
    cdef Py_ssize_t max_window            # the most candidates one scan examines (widest_window)
    cdef const int32_t[::1] slot          # load slot of each node
    cdef const uint8_t[::1] node_flags    # NF_HAS_GPU | NF_PUBLIC
    cdef const uint8_t[::1] provides      # ServiceType mask of RUNNING (core-id matching) services
    cdef const int32_t[::1] max_jobs      # max_concurrent_jobs, >= 1
    cdef const int64_t[::1] id_ptr        # CSR offsets of the UTF-8 node ids in id_bytes
    cdef const uint8_t[::1] id_bytes
    cdef const uint64_t[::1] asr_bits     # ASR languages
    cdef const uint64_t[::1] tts_bits     # TTS languages
    cdef const uint64_t[::1] nmt_bits     # nmt_languages
    cdef const uint64_t[::1] nmt_tgt_bits # targets of nmt_pairs (for an "auto" source)
    cdef const int32_t[::1] pair_ptr      # CSR offsets of each node's sorted pair codes
    cdef const int32_t[::1] pair_codes    # src * n_langs + tgt
    cdef const uint8_t[::1] pool_req      # required_services mask
    cdef const int32_t[::1] mem_ptr       # CSR offsets of members in mem_idx
    cdef const int32_t[::1] mem_idx       # member node indices, ascending (= id order)
    cdef const uint64_t[::1] pool_lang_bits
    cdef const int32_t[::1] idx_ptr       # n_pool_langs * n_pool_langs + 1 offsets
    cdef const int32_t[::1] idx_pools
    cdef const int32_t[::1] auto_ptr      # n_pool_langs + 1 offsets
    cdef const int32_t[::1] auto_pools
    cdef bint two_level, strict, fallback_all, affinity, scope_all, mode_exact
    cdef uint64_t seed
    cdef Py_ssize_t sample_size
    cdef float64_t threshold, timeout
    cdef dict lang_index                  # language code -> language id
    cdef dict node_index                  # node id -> node index, or None: search the sorted ids
    cdef dict tenant_index                # tenant id -> pool index of its override
    cdef tuple node_names                 # node ids, by index
    cdef tuple pool_keys                  # pool ids, by index
    cdef const int64_t[::1] serial        # registration serial of each node
    cdef const int64_t[::1] pool_id_arr   # pool ids, by index, as integers
    cdef str auto_code                    # the source code meaning "detect it"
    # pool coverage: what some member of each pool has (see cover_pools); a pool
    # whose coverage cannot serve a job holds no node that passes its static checks
    cdef const uint8_t[::1] cov_flags     # OR of the members' node_flags
    cdef const uint8_t[::1] cov_provides  # OR of the members' provides
    cdef const uint64_t[::1] cov_bits     # per pool COV_SETS bitsets of ``words`` words (COV_* order)
    cdef readonly int64_t version         # the generation's snapshot version
    cdef bint named
    cdef Py_ssize_t node_of(self, object node_id) except -2
    cdef bint services_match(self, Py_ssize_t p, int32_t types) noexcept nogil
    cdef Py_ssize_t eligible(self, const JobIn* job, int32_t* out) noexcept nogil
    cdef bint serves_nmt(self, Py_ssize_t i, int32_t src, int32_t tgt) noexcept nogil
    cdef int check_node(self, Py_ssize_t i, NodeLoad* rec, const JobIn* job, float64_t now,
                        int32_t* load) noexcept nogil
    cdef int scan(self, Py_ssize_t pool, const JobIn* job, float64_t now, IntBuf* att,
                  Survivors* surv, Py_ssize_t* n_survivors) noexcept nogil
    cdef Py_ssize_t pick(self, const Survivors* surv, Py_ssize_t n, const JobIn* job) noexcept nogil
    cdef bint before(self, uint64_t h, int32_t node, uint64_t h_other, int32_t other) noexcept nogil
    cdef void tiebreak4(self, const int32_t* survivors, const int32_t* tied, Py_ssize_t m,
                        uint64_t h_key, uint64_t* out) noexcept nogil
    cdef int cover_pools(self) except -1
    cdef int cannot_serve(self, Py_ssize_t p, const JobIn* job) noexcept nogil
    cdef Py_ssize_t skip(self, IntBuf* att, int32_t pool, int reason, Py_ssize_t run) noexcept nogil
    cdef Py_ssize_t widest_window(self) noexcept
    cdef Py_ssize_t scratch_ints(self) noexcept nogil
    cdef int select_job(self, const JobIn* job, float64_t now, IntBuf* att, int32_t* scratch,
                        JobOut* out, bint reserve_node) noexcept nogil
    cdef bytes run(self, const JobIn* job, float64_t now, JobOut* out, bint reserve_node)


@cython.final
cdef class SessionTable:
    cdef readonly Py_ssize_t max_sessions
    cdef readonly float64_t idle_ttl_s
    cdef readonly Py_ssize_t evicted, expired
    cdef SessionSlot* slots
    cdef Py_ssize_t cap, n
    cdef int32_t* index               # hash table of slot numbers (-1: empty), index_mask + 1 long
    cdef Py_ssize_t index_mask
    cdef int32_t head, tail, free_head   # most / least recently used; free list
    cdef list ids, pairs                 # per slot, for reading: session id, (src, tgt, types)
    cdef int grow(self) except -1
    cdef void index_put(self, int32_t s) noexcept
    cdef Py_ssize_t index_find(self, uint64_t key, uint64_t key2) noexcept
    cdef void index_delete(self, Py_ssize_t h) noexcept
    cdef void unlink(self, int32_t s) noexcept
    cdef void push_front(self, int32_t s) noexcept
    cdef void remove(self, int32_t s, Py_ssize_t h) noexcept
    cdef void reset(self, int32_t s, float64_t now) noexcept
    cdef void set_last(self, int32_t s, object names, int32_t node) noexcept
    cdef int32_t touch(self, str session_id, float64_t now) except -1


@cython.final
cdef class SelectionRecords:
    cdef object decode
    cdef object snapshot
    cdef bytes records
    cdef bint picked, no_eligible_pool


@cython.final
cdef class Dispatcher:
    cdef readonly LoadTable loads
    cdef readonly uint64_t epoch
    cdef readonly SessionTable sessions     # None until configure_sessions
    cdef object make_selection, decode, selection_type, on_rebind
    cdef Reservation* res
    cdef Py_ssize_t res_cap, n_live
    cdef int32_t free_head
    cdef int64_t* owners                # registration serial by load slot (0: none)
    cdef Py_ssize_t owners_cap
    cdef uint64_t rng
    cdef int64_t counts[N_COUNTERS]
    cdef bint direct                    # results built in C at slot_offsets (see find_offsets)
    cdef Py_ssize_t slot_offsets[N_SELECTION_SLOTS]
    cdef object job_type
    cdef bint job_direct                # job fields read at job_offsets
    cdef Py_ssize_t job_offsets[N_JOB_FIELDS]
    cdef bint find_offsets(self, type cls, tuple names, Py_ssize_t* offsets, Py_ssize_t capacity) except -1
    cdef tuple job_fields(self, job)
    cdef object new_selection(self, node_id, pool_id, preferred_pool, bint fallback_used, token, decode)
    cdef void put(self, PyObject* obj, int k, object value) noexcept
    cdef int grow(self) except -1
    cdef uint64_t add_entry(self, int32_t slot, int64_t serial, float64_t now) except 0
    cdef void drop_entry(self, Py_ssize_t k) noexcept
    cdef Py_ssize_t find(self, uint64_t token) noexcept
    cdef int end_token(self, uint64_t token, bint commit) noexcept
    cdef bint owned(self, int32_t slot, int64_t serial) noexcept
    cdef object decide(self, snapshot, CompiledSnapshot cs, job, float64_t now, int32_t bound_pool,
                       int32_t only_pool, bint bind_session)
    cdef bint unchanged(self, int32_t s, str src, str tgt, int32_t types, required_types,
                        int64_t generation) except -1
    cdef Py_ssize_t settle(self, int32_t s, const int32_t* order, Py_ssize_t n, const int64_t* pool_ids,
                           uint64_t h_key, bint affinity, uint64_t seed, str src, str tgt,
                           int64_t generation) except -2
    cdef int32_t bind(self, CompiledSnapshot cs, int32_t s, JobIn* j, str src, str tgt, required_types) except -2
    cdef object finish(self, snapshot, CompiledSnapshot cs, const JobOut* out, bytes records, float64_t now)


@cython.final
cdef class SteadyBeats:
    cdef LoadTable loads
    cdef dict steady                  # node id (exact str) -> load slot, for steady nodes
    cdef object lock_probe            # the registry lock's locked() (a builtin)
    cdef object clock                 # the registry's clock
    cdef object hb_type               # the Heartbeat class
    cdef Py_ssize_t offsets[6]        # where its six slots sit in an instance
    cdef bint enabled, quiet          # compiled beats on; no change listener subscribed
    cdef uint64_t changes             # bumped by every admit / evict / switch
    cdef readonly uint64_t applied    # beats applied here (merged into the heartbeats counter)
