# The compiled dispatcher: one call into C per decision (included by _hotpath.pyx).
#
# One Dispatcher per registry; it follows snapshot generations (each call
# names the generation it reads) and owns what outlives them: the reservation
# table, the slot owners and the counters.
#
# Concurrency: the kernels run with the GIL released and reserve through the
# load table's atomics. Everything else here (the reservation table, the
# owners, the counters) is read and written only with the GIL held, in C code
# that never calls back into Python between a read and the matching write, so
# the GIL serialises those updates; they need no atomics of their own.

from cpython.long cimport PyLong_AsUnsignedLongLong
from cpython.list cimport PyList_GET_ITEM
from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_DECREF, Py_INCREF, Py_XDECREF


cdef extern from "Python.h":
    # the parts of a __slots__ member descriptor the dispatcher reads
    ctypedef struct PyMemberDef:
        int type
        Py_ssize_t offset
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member
    PyTypeObject PyMemberDescr_Type
    int T_OBJECT_EX
    PyObject* PyType_GenericAlloc(PyTypeObject* tp, Py_ssize_t nitems) except NULL
    PyObject* PyTuple_New(Py_ssize_t n) except NULL
    void PyTuple_SET_ITEM(PyObject* t, Py_ssize_t i, PyObject* v)

from _types cimport int8_t


cdef enum:
    # token = epoch << 44 | entry index << 20 | entry sequence
    TOKEN_SEQ_BITS = 20
    TOKEN_INDEX_BITS = 24
    TOKEN_EPOCH_BITS = 19             # the top bit stays clear: tokens are < 2**63
    TOKEN_INDEX_SHIFT = 20
    TOKEN_EPOCH_SHIFT = 44
    RES_INITIAL = 1024                # entries allocated by the first reservation
    EXCL_STACK = 64                   # excluded node indices on the stack before malloc

TOKEN_EPOCH_SHIFT_BITS = TOKEN_EPOCH_SHIFT
# the job's fields a decision reads, in this order (see Dispatcher.job_fields)
JOB_FIELDS = ("src_lang", "tgt_lang", "types_mask", "public", "preferred_node_id", "tenant_id", "key",
              "session_id", "exclude_node_ids", "required_types")
# the selection type's slots the dispatcher fills, in this order (see Dispatcher.new_selection)
SELECTION_SLOTS = ("_node_id", "_pool_id", "_preferred_pool", "_fallback_used", "_path", "_reservation",
                   "_breakdown", "_attempts", "_decode")
COUNTER_NAMES = ("selections", "selections_failed", "commits", "releases", "reservations_expired")


cdef inline uint64_t _mix64(uint64_t x) noexcept nogil:
    """splitmix64's finaliser: a well-spread 64-bit value from any seed."""
    x ^= x >> 30
    x *= 0xbf58476d1ce4e5b9ULL
    x ^= x >> 27
    x *= 0x94d049bb133111ebULL
    x ^= x >> 31
    return x


cdef int failure_code(const int32_t* first_record, int32_t empty_reason) noexcept nogil:
    """The reason a failed selection is counted under: the top reason of its
    first attempt (most frequent, earlier check on ties), R_NO_NODES when that
    attempt examined nothing, R_NO_ELIGIBLE_POOL when nothing was tried, and
    N_REASON_SLOTS - 1 when nothing was rejected."""
    cdef int r, best = -1
    cdef int32_t most = 0
    if empty_reason == R_NO_ELIGIBLE_POOL or first_record == NULL:
        return R_NO_ELIGIBLE_POOL
    if first_record[ATT_TOTAL] == 0:
        return R_NO_NODES
    for r in range(N_CHECK_REASONS):
        if first_record[ATT_COUNTS + r] > most:
            most = first_record[ATT_COUNTS + r]
            best = r
    return best if best >= 0 else N_REASON_SLOTS - 1


cdef int translate(CompiledSnapshot cs, src, tgt, types, public, preferred, tenant, str key,
                   JobIn* j) except -1:
    """A job's fields in ``cs``'s integer terms: language ids (LANG_AUTO,
    LANG_UNKNOWN), service mask, public flag, preferred node and tenant
    override pool (-1: none) and the routing key's FNV-1a-64 state; the
    single call and the batch both translate through here."""
    cdef Py_ssize_t n = 0
    cdef const unsigned char* kb
    cdef object v
    if src == cs.auto_code:
        j.src = LANG_AUTO
    else:
        v = cs.lang_index.get(src)
        j.src = LANG_UNKNOWN if v is None else <int32_t>v
    v = cs.lang_index.get(tgt)
    j.tgt = LANG_UNKNOWN if v is None else <int32_t>v
    j.types = types
    j.public = public
    j.preferred = -1 if preferred is None else <int32_t>cs.node_of(preferred)
    j.tenant_pool = -1
    if tenant is not None:
        v = cs.tenant_index.get(tenant)
        if v is not None:
            j.tenant_pool = <int32_t>v
    kb = _utf8(key, &n)
    j.h_key = fnv1a64_bytes(kb, n)
    return 0


@cython.final
cdef class SelectionRecords:
    """A fast selection's attempt records, decoded only when called: the
    ``decode`` hook of the ``Selection`` the dispatcher returns."""


    def __call__(self):
        """``(attempts, breakdown)``, by the decoder given to the Dispatcher."""
        return self.decode(self.snapshot, self.records, self.picked, self.no_eligible_pool)


@cython.final
cdef class Dispatcher:
    """One registry's compiled dispatch: the whole fast-path decision in one
    call (:meth:`select`), the reservation table its tokens name, and the
    dispatch counters.

    ``make_selection(node_id, pool_id, preferred_pool, fallback_used, path,
    token, decode)`` builds the returned object; ``decode(snapshot, records,
    picked, no_eligible_pool)`` turns attempt records into ``(attempts,
    breakdown)`` when first read; ``selection_type`` is the class whose
    ``_reservation`` :meth:`end` reads. ``entropy`` seeds the token epoch
    (drawn at random once per registry) and the entries' first sequences.
    """


    def __cinit__(self):
        cdef int k
        self.res = NULL
        self.owners = NULL
        self.res_cap = 0
        self.owners_cap = 0
        self.n_live = 0
        self.free_head = -1
        for k in range(N_COUNTERS):
            self.counts[k] = 0

    def __init__(self, LoadTable loads not None, make_selection, decode, type selection_type not None,
                 uint64_t entropy, type job_type=None):
        self.loads = loads
        self.make_selection = make_selection
        self.decode = decode
        self.selection_type = selection_type
        self.rng = _mix64(entropy)
        self.epoch = (self.rng >> (64 - TOKEN_EPOCH_BITS)) or 1
        self.rng = _mix64(self.rng + 1)
        self.direct = self.find_offsets(selection_type, SELECTION_SLOTS, self.slot_offsets, N_SELECTION_SLOTS)
        self.job_type = job_type
        self.job_direct = job_type is not None and self.find_offsets(
            job_type, JOB_FIELDS, self.job_offsets, N_JOB_FIELDS)

    cdef bint find_offsets(self, type cls, tuple names, Py_ssize_t* offsets, Py_ssize_t capacity) except -1:
        """Whether every name of ``names`` is a ``__slots__`` object member of
        ``cls`` allocated by ``object.__new__``; if so, their offsets go to
        ``offsets``. The dispatcher then reads (jobs) or writes (results)
        those fields in C instead of through attribute lookups."""
        cdef Py_ssize_t k
        cdef PyMemberDef* member
        if len(names) != capacity:
            raise RuntimeError(f"find_offsets: {len(names)} names for {capacity} offsets")
        if cls.__new__ is not object.__new__ or cls.__basicsize__ <= object.__basicsize__:
            return False  # object.__new__ allocates with PyType_GenericAlloc; anything else: Python
        for k, name in enumerate(names):
            descr = cls.__dict__.get(name)
            if descr is None or type(descr) is not <type>&PyMemberDescr_Type:
                return False
            member = (<PyMemberDescrObject*>descr).d_member
            if member.type != T_OBJECT_EX or member.offset <= 0:
                return False
            offsets[k] = member.offset
        return True

    cdef tuple job_fields(self, job):
        """The job's JOB_FIELDS, in order: read at their slot offsets when the job
        is exactly the registered job type, else by attribute lookup."""
        cdef PyObject* raw
        cdef PyObject* value
        cdef Py_ssize_t k
        cdef tuple out
        if not (self.job_direct and type(job) is self.job_type):
            return tuple([getattr(job, name) for name in JOB_FIELDS])
        raw = PyTuple_New(N_JOB_FIELDS)
        out = <tuple>raw
        Py_DECREF(out)  # ``out`` holds the one reference
        for k in range(N_JOB_FIELDS):
            value = (<PyObject**>((<char*><PyObject*>job) + self.job_offsets[k]))[0]
            if value == NULL:  # a slot never set: what getattr would say
                raise AttributeError(JOB_FIELDS[k])
            Py_INCREF(<object>value)
            PyTuple_SET_ITEM(raw, k, value)
        return out

    cdef object new_selection(self, node_id, pool_id, preferred_pool, bint fallback_used, token, decode):
        """A selection with attempts decoded on first read: what
        ``make_selection(..., "fast", token, decode)`` returns, its slots
        written directly (no Python frame) when ``find_slots`` allowed it."""
        cdef PyTypeObject* tp
        cdef PyObject* raw
        cdef object sel
        if not self.direct:
            return self.make_selection(node_id, pool_id, preferred_pool, fallback_used, "fast", token, decode)
        tp = <PyTypeObject*>self.selection_type
        raw = PyType_GenericAlloc(tp, 0)  # what object.__new__ does: zeroed slots, GC-tracked
        sel = <object>raw
        Py_DECREF(sel)  # ``sel`` holds the one reference
        self.put(raw, 0, node_id)
        self.put(raw, 1, pool_id)
        self.put(raw, 2, preferred_pool)
        self.put(raw, 3, True if fallback_used else False)
        self.put(raw, 4, "fast")
        self.put(raw, 5, token)
        self.put(raw, 6, None)
        self.put(raw, 7, None)
        self.put(raw, 8, decode)
        return sel

    cdef inline void put(self, PyObject* obj, int k, object value) noexcept:
        cdef PyObject** field = <PyObject**>((<char*>obj) + self.slot_offsets[k])
        cdef PyObject* old = field[0]
        Py_INCREF(value)
        field[0] = <PyObject*>value
        Py_XDECREF(old)

    def __dealloc__(self):
        free(self.res)
        free(self.owners)

    def configure_sessions(self, Py_ssize_t max_sessions, float64_t idle_ttl_s, on_rebind):
        """Keep the fast path's session bindings here (a new, empty table):
        bounded to ``max_sessions``, expiring after ``idle_ttl_s`` idle.
        ``on_rebind(session_id, pool_id, src, tgt)`` is called when a bound
        pool is no longer eligible and the session rebinds."""
        self.sessions = SessionTable(max_sessions, idle_ttl_s)
        self.on_rebind = on_rebind

    # -- the reservation table ----------------------------------------------------------

    cdef int grow(self) except -1:
        """Double the entry array (seeding the new entries' sequences) and
        chain the new entries onto the free list."""
        cdef Py_ssize_t cap = self.res_cap * 2 if self.res_cap else RES_INITIAL, k
        cdef Reservation* data
        if self.res_cap >= (<Py_ssize_t>1 << TOKEN_INDEX_BITS):
            raise MemoryError("reservation table full (16,777,216 live reservations)")
        data = <Reservation*>realloc(self.res, cap * sizeof(Reservation))
        if data == NULL:
            raise MemoryError()
        self.res = data
        for k in range(self.res_cap, cap):
            self.rng = _mix64(self.rng + <uint64_t>k)
            data[k].slot = -1
            data[k].serial = 0
            data[k].created = 0.0
            data[k].seq = <uint32_t>self.rng
            data[k].next_free = <int32_t>(k + 1) if k + 1 < cap else self.free_head
        self.free_head = <int32_t>self.res_cap
        self.res_cap = cap
        return 0

    cdef uint64_t add_entry(self, int32_t slot, int64_t serial, float64_t now) except 0:
        """Record a place already taken in the load table; return its token."""
        cdef int32_t k
        cdef Reservation* e
        if self.free_head < 0:
            self.grow()
        k = self.free_head
        e = &self.res[k]
        self.free_head = e.next_free
        e.slot = slot
        e.serial = serial
        e.created = now
        e.seq += 1
        self.n_live += 1
        return ((self.epoch << TOKEN_EPOCH_SHIFT) | (<uint64_t>k << TOKEN_INDEX_SHIFT)
                | (e.seq & ((1 << TOKEN_SEQ_BITS) - 1)))

    cdef void drop_entry(self, Py_ssize_t k) noexcept:
        self.res[k].slot = -1
        self.res[k].next_free = self.free_head
        self.free_head = <int32_t>k
        self.n_live -= 1

    cdef Py_ssize_t find(self, uint64_t token) noexcept:
        """The live entry ``token`` names, or -1 (foreign epoch, out of range,
        free entry, or a sequence that has moved on)."""
        cdef Py_ssize_t k = (token >> TOKEN_INDEX_SHIFT) & ((1 << TOKEN_INDEX_BITS) - 1)
        if (token >> TOKEN_EPOCH_SHIFT) != self.epoch or k >= self.res_cap:
            return -1
        if self.res[k].slot < 0 or (self.res[k].seq & ((1 << TOKEN_SEQ_BITS) - 1)) != (token & ((1 << TOKEN_SEQ_BITS) - 1)):
            return -1
        return k

    cdef bint owned(self, int32_t slot, int64_t serial) noexcept:
        return slot < self.owners_cap and self.owners[slot] == serial

    def claim_slot(self, Py_ssize_t slot, int64_t serial):
        """The node with registration ``serial`` now holds load slot ``slot``."""
        cdef Py_ssize_t cap
        cdef int64_t* data
        if slot < 0 or slot >= MAX_SLOTS or serial <= 0:
            raise ValueError(f"claim_slot: slot {slot} / serial {serial} out of range")
        if slot >= self.owners_cap:
            cap = max(self.owners_cap * 2, slot + 1, 1024)
            data = <int64_t*>realloc(self.owners, cap * sizeof(int64_t))
            if data == NULL:
                raise MemoryError()
            memset(data + self.owners_cap, 0, (cap - self.owners_cap) * sizeof(int64_t))
            self.owners = data
            self.owners_cap = cap
        self.owners[slot] = serial

    def free_slot(self, Py_ssize_t slot):
        """The slot's node left: drop its reservations and give their places back."""
        cdef Py_ssize_t k
        cdef int64_t serial
        if slot < 0 or slot >= self.owners_cap:
            return
        serial = self.owners[slot]
        self.owners[slot] = 0
        for k in range(self.res_cap):
            if self.res[k].slot == slot and self.res[k].serial == serial:
                self.drop_entry(k)
                unreserve(self.loads.at(slot))

    cdef int end_token(self, uint64_t token, bint commit) noexcept:
        """End the reservation ``token`` names: 1 if it ended a live reservation
        of this table, 0 if it names none of this epoch, -1 if it is another
        epoch's (or 0, no token at all). C only, GIL held."""
        cdef Py_ssize_t k
        cdef int32_t slot
        cdef NodeLoad* rec
        cdef bint alive
        if (token >> TOKEN_EPOCH_SHIFT) != self.epoch:
            return -1
        k = self.find(token)
        if k < 0:
            return 0
        slot = self.res[k].slot
        alive = self.owned(slot, self.res[k].serial)
        self.drop_entry(k)
        if not alive:
            return 0
        rec = self.loads.at(slot)
        if not unreserve(rec):
            return 0
        if commit:
            pys_add(&rec.running, 1)
            self.counts[C_COMMITS] += 1
        else:
            self.counts[C_RELEASES] += 1
        return 1

    def end(self, selection_or_token, bint commit):
        """Commit or release by a ``Selection`` or a token: 1 if it ended a live
        reservation of this table, 0 if it names none (forged, reused, expired,
        its node gone, or ``None``), -1 if it is not this table's token (another
        epoch: the caller asks its other table), -2 if it is neither."""
        cdef object tok = selection_or_token
        if type(tok) is self.selection_type:
            tok = (<object>tok)._reservation
            if tok is None:
                return 0
        if type(tok) is not int:
            return -2
        if tok < 0 or tok >= (1 << 63):
            return -1
        return self.end_token(PyLong_AsUnsignedLongLong(tok), commit)

    def end_batch(self, const uint64_t[::1] tokens not None, bint commit, int8_t[::1] out not None):
        """:meth:`end` for every token in order, in one C loop: ``out[i]`` is 1
        if token ``i`` ended a live reservation, 0 if it names none of this
        table, -1 if it is another epoch's (or 0: no token). Returns how many ended."""
        cdef Py_ssize_t i, n = tokens.shape[0], ended = 0
        cdef int r
        if out.shape[0] != n:
            raise ValueError("end_batch: out needs one entry per token")
        for i in range(n):
            r = self.end_token(tokens[i], commit)
            out[i] = <int8_t>r
            if r == 1:
                ended += 1
        return ended

    def expire(self, float64_t now, float64_t ttl_s):
        """Give back every place taken more than ``ttl_s`` seconds before ``now``;
        return how many."""
        cdef Py_ssize_t k, n = 0
        cdef int32_t slot
        for k in range(self.res_cap):
            slot = self.res[k].slot
            if slot >= 0 and now - self.res[k].created > ttl_s:
                if self.owned(slot, self.res[k].serial):
                    unreserve(self.loads.at(slot))
                self.drop_entry(k)
                n += 1
        self.counts[C_EXPIRED] += n
        return n

    def held(self):
        """``(slot, serial)`` of every live reservation (for the consistency check)."""
        cdef Py_ssize_t k
        return [(self.res[k].slot, self.res[k].serial) for k in range(self.res_cap) if self.res[k].slot >= 0]

    def __len__(self):
        return self.n_live

    def held_and_reserved(self, slots):
        """``(held, reserved)``: :meth:`held`, and the load table's reserved
        count of each of ``slots``, read in one step: no token of this table
        can end in between."""
        cdef Py_ssize_t slot
        cdef list reserved = []
        for s in slots:
            slot = s
            reserved.append(pys_load(&self.loads._checked(slot).reserved))
        return self.held(), reserved

    def activity(self):
        """``(in_flight, changes)``: decisions begun and not finished, and the
        load-table changes made through this dispatcher so far (decisions
        begun, reservations ended and expired). Two equal stamps with nothing
        in flight mean nothing changed in between."""
        return (self.counts[C_STARTED] - self.counts[C_FINISHED],
                self.counts[C_STARTED] + self.counts[C_COMMITS] + self.counts[C_RELEASES]
                + self.counts[C_EXPIRED])

    def counters(self):
        """Every dispatch counter by metric name, zeros included."""
        cdef int r
        out = {name: self.counts[k] for k, name in enumerate(COUNTER_NAMES)}
        for name, r in REASON_CODES.items():
            out[f"failed.{name}"] = self.counts[C_FAILED_REASON + r]
        out["failed.None"] = self.counts[C_FAILED_REASON + N_REASON_SLOTS - 1]
        return out

    # -- the decision -------------------------------------------------------------------

    def select(self, snapshot, job, float64_t now, int32_t bound_pool=-1, int32_t only_pool=-1,
               bint bind_session=False):
        """Place ``job`` on ``snapshot`` (a runtime snapshot whose ``compiled``
        view was built on this dispatcher's load table, with names bound),
        reserve the node picked and record its token; return the selection.

        ``bound_pool`` is the session's bound pool index, ``only_pool`` the
        one pool to scan (-1: none). With ``bind_session`` (and sessions
        configured) a job with a ``session_id`` finds, or makes, its binding
        in the session table instead, and the node picked is remembered
        there. Reads the job's ``src_lang``, ``tgt_lang``, ``types_mask``,
        ``public``, ``preferred_node_id``, ``tenant_id``,
        ``exclude_node_ids``, ``key`` (and ``session_id``).
        """
        cdef CompiledSnapshot cs = snapshot.compiled
        if cs is None or not cs.named or cs.loads is not self.loads:
            raise ValueError("Dispatcher.select: the snapshot is not one of this dispatcher's generations")
        if only_pool >= cs.n_pools or bound_pool >= cs.n_pools:
            raise IndexError("pool index out of range")
        self.counts[C_STARTED] += 1
        try:
            return self.decide(snapshot, cs, job, now, bound_pool, only_pool, bind_session)
        finally:
            self.counts[C_FINISHED] += 1

    cdef object decide(self, snapshot, CompiledSnapshot cs, job, float64_t now, int32_t bound_pool,
                       int32_t only_pool, bint bind_session):
        cdef JobIn j
        cdef JobOut out
        cdef int32_t excl_stack[EXCL_STACK]
        cdef int32_t* excl = excl_stack
        cdef int32_t session = -1
        cdef Py_ssize_t i
        cdef uint64_t key1 = 0, key2 = 0
        cdef object sid = None
        cdef tuple f = self.job_fields(job)  # JOB_FIELDS order
        translate(cs, f[0], f[1], f[2], f[3], f[4], f[5], f[6], &j)
        j.bound_pool = bound_pool
        j.only_pool = only_pool
        j.excluded = NULL
        j.n_excluded = 0
        if bind_session and self.sessions is not None:
            sid = f[7]
            if sid is not None:
                session = self.sessions.touch(sid, now)
                key1 = self.sessions.slots[session].key
                key2 = self.sessions.slots[session].key2
                j.bound_pool = self.bind(cs, session, &j, f[0], f[1], f[9])
        excluded = f[8]
        try:
            if excluded:
                if len(excluded) > EXCL_STACK:
                    excl = <int32_t*>malloc(len(excluded) * sizeof(int32_t))
                    if excl == NULL:
                        raise MemoryError()
                for node_id in excluded:
                    i = cs.node_of(node_id)
                    if i >= 0:
                        excl[j.n_excluded] = <int32_t>i
                        j.n_excluded += 1
                j.excluded = excl
            records = cs.run(&j, now, &out, True)
        finally:
            if excl != excl_stack:
                free(excl)
        selection = self.finish(snapshot, cs, &out, records, now)
        # the kernel ran without the GIL: the slot may have passed to another session since
        if (session >= 0 and out.node >= 0 and self.sessions.slots[session].key == key1
                and self.sessions.slots[session].key2 == key2):
            self.sessions.set_last(session, cs.node_names, out.node)
        return selection

    def note_session_node(self, str session_id not None, str node_id not None):
        """Remember the node a session's last job went to (batch path)."""
        cdef uint64_t key, key2
        cdef Py_ssize_t h
        if self.sessions is None:
            return
        session_keys(session_id, &key, &key2)
        h = self.sessions.index_find(key, key2)
        if h >= 0:
            self.sessions.set_last(self.sessions.index[h], node_id, -1)

    cdef bint unchanged(self, int32_t s, str src, str tgt, int32_t types, required_types,
                        int64_t generation) except -1:
        """Whether session slot ``s``'s binding stands as it is: the same pair,
        already checked against ``generation``. A new pair drops the binding."""
        cdef SessionTable t = self.sessions
        cdef uint64_t key = pair_key(src, tgt)
        cdef SessionSlot* e = &t.slots[s]
        if e.types == 0 or e.types != types or e.pair_key != key:
            e.types = types
            e.pair_key = key
            e.bound_pool = -1
            t.pairs[s] = (src, tgt, required_types)  # for reading only
            return False
        return e.checked == generation

    cdef Py_ssize_t settle(self, int32_t s, const int32_t* order, Py_ssize_t n, const int64_t* pool_ids,
                           uint64_t h_key, bint affinity, uint64_t seed, str src, str tgt,
                           int64_t generation) except -2:
        """Check session slot ``s``'s binding against the eligible pools
        ``pool_ids[order[0:n]]`` (in eligible order) and bind when unbound:
        SessionRuntimeManager.bind's rule. Returns the position in ``order`` of
        the bound pool, or -1."""
        cdef SessionTable t = self.sessions
        cdef SessionSlot* e = &t.slots[s]
        cdef Py_ssize_t k, found = -1
        cdef int64_t old
        cdef unsigned char seed_le[8]
        if e.bound_pool >= 0:
            for k in range(n):
                if pool_ids[order[k]] == e.bound_pool:
                    found = k
                    break
            if found < 0:
                old = e.bound_pool
                e.bound_pool = -1
                self.on_rebind(t.ids[s], old, src, tgt)
                e = &t.slots[s]  # the callback may have let another thread grow the table
        if e.bound_pool < 0 and n > 0:
            found = 0
            if affinity:
                for k in range(8):
                    seed_le[k] = <unsigned char>((seed >> (8 * k)) & 0xFF)
                found = <Py_ssize_t>(fnv1a64_update(h_key, seed_le, 8) % <uint64_t>n)
            e.bound_pool = pool_ids[order[found]]
        e.checked = generation
        return found

    cdef int32_t bind(self, CompiledSnapshot cs, int32_t s, JobIn* j, str src, str tgt, required_types) except -2:
        """The bound pool index of session slot ``s`` for this job in ``cs``,
        eligibility read from the compiled language index (-1: none)."""
        cdef SessionTable t = self.sessions
        cdef int32_t order_stack[256]
        cdef int32_t* order = order_stack
        cdef Py_ssize_t n = 0, k, found
        cdef int64_t bound
        if self.unchanged(s, src, tgt, j.types, required_types, cs.version):
            bound = t.slots[s].bound_pool
            if bound < 0:
                return -1
            if t.slots[s].bound_index == -2:  # checked by the legacy path: find its index here
                for k in range(cs.n_pools):
                    if cs.pool_id_arr[k] == bound:
                        t.slots[s].bound_index = <int32_t>k
                        break
                if t.slots[s].bound_index == -2:
                    t.slots[s].bound_index = -1
            return t.slots[s].bound_index
        if cs.n_pools + 1 > 256:
            order = <int32_t*>malloc((cs.n_pools + 1) * sizeof(int32_t))
            if order == NULL:
                raise MemoryError()
        try:
            if cs.two_level:
                n = cs.eligible(j, order)
                if n == 0 and not cs.strict:
                    for k in range(cs.n_pools):
                        order[k] = <int32_t>k
                    n = cs.n_pools
            found = self.settle(s, order, n, &cs.pool_id_arr[0] if cs.n_pools else NULL,
                                j.h_key, cs.affinity, cs.seed, src, tgt, cs.version)
            t.slots[s].bound_index = order[found] if found >= 0 else -1
        finally:
            if order != order_stack:
                free(order)
        return t.slots[s].bound_index

    def bind_listed(self, job, eligible, bint affinity, uint64_t seed, int64_t generation, float64_t now):
        """The bound pool id of ``job``'s session (``None``: none), eligibility
        given by ``eligible()`` — a list of pool ids in eligible order, called
        only when the binding must be checked (a new pair, or a new
        ``generation``): the legacy path's binding, in the same table as the
        fast path's. ``SessionRuntimeManager.bind`` is the reference."""
        cdef int32_t s, k
        cdef Py_ssize_t n = 0, found
        cdef const unsigned char* kb
        cdef int64_t* ids = NULL
        cdef int32_t* order = NULL
        cdef SessionTable t = self.sessions
        if t is None:
            raise ValueError("bind_listed: sessions are not configured")
        sid = job.session_id
        if sid is None:
            return None
        s = t.touch(sid, now)
        if not self.unchanged(s, job.src_lang, job.tgt_lang, job.types_mask, job.required_types, generation):
            pools = [int(p) for p in eligible()]
            ids = <int64_t*>malloc((len(pools) + 1) * sizeof(int64_t))
            order = <int32_t*>malloc((len(pools) + 1) * sizeof(int32_t))
            try:
                if ids == NULL or order == NULL:
                    raise MemoryError()
                for k in range(len(pools)):
                    ids[k] = pools[k]
                    order[k] = k
                key = job.key
                kb = _utf8(key, &n)
                found = self.settle(s, order, len(pools), ids, fnv1a64_bytes(kb, n), affinity, seed,
                                    job.src_lang, job.tgt_lang, generation)
                t.slots[s].bound_index = -2  # a pool id without a compiled index yet
            finally:
                free(ids)
                free(order)
        return None if t.slots[s].bound_pool < 0 else t.slots[s].bound_pool

    cdef object finish(self, snapshot, CompiledSnapshot cs, const JobOut* out, bytes records, float64_t now):
        """Record and count the kernel's answer; build the selection."""
        cdef const int32_t* recs = <const int32_t*><const char*>records
        cdef uint64_t token
        cdef int32_t pool
        cdef SelectionRecords decode = SelectionRecords.__new__(SelectionRecords)
        decode.decode = self.decode
        decode.snapshot = snapshot
        decode.records = records
        decode.picked = out.node >= 0
        decode.no_eligible_pool = out.empty_reason == R_NO_ELIGIBLE_POOL
        if out.node < 0:
            self.counts[C_SELECTIONS] += 1
            self.counts[C_FAILED] += 1
            self.counts[C_FAILED_REASON + failure_code(recs if len(records) else NULL, out.empty_reason)] += 1
            if decode.no_eligible_pool:
                return self.new_selection(None, None, None, False, None, decode)
            return self.new_selection(
                None, None, cs.pool_keys[out.preferred_pool] if out.preferred_pool >= 0 else None,
                out.fallback != 0 or out.n_attempts > 1, None, decode)
        try:
            token = self.add_entry(cs.slot[out.node], cs.serial[out.node], now)
        except BaseException:
            unreserve(self.loads.at(cs.slot[out.node]))  # nothing may stay held without a token
            raise
        self.counts[C_SELECTIONS] += 1
        pool = recs[out.picked * ATT_WIDTH + ATT_POOL]
        return self.new_selection(
            cs.node_names[out.node],
            cs.pool_keys[pool] if pool >= 0 else None,
            cs.pool_keys[out.preferred_pool] if out.preferred_pool >= 0 else None,
            out.fallback != 0 or out.n_attempts > 1,
            token,
            decode,
        )

    # -- a whole batch --------------------------------------------------------------------

    def select_batch(self, snapshot, list jobs, tuple columns, float64_t now, bint bind_session=False):
        """Place every job of a batch in order, each seeing the reservations of
        those before it: the decisions, reservations, counters and session
        bindings of :meth:`select` called job by job, with the kernel run for
        every job in one ``nogil`` section and the answer returned as columns.

        The jobs are ``jobs`` (a list of ``JobRequest``), or, with ``jobs``
        None, ``columns``: ten lists of one entry per job, validated as
        ``JobRequest`` validates — ``src_lang``, ``tgt_lang``, ``types_mask``,
        ``public``, ``preferred_node_id``, ``tenant_id``, ``exclude_node_ids``,
        ``key``, ``session_id``, ``required_types``. With ``bind_session`` (and
        sessions configured) each job with a session id finds or makes its
        binding first, in job order, and its session remembers the node picked.

        Returns ``(node, pool_id, preferred_pool_id, fallback, token, reason,
        records, offsets)``: per job the node index (int32, -1: none), the id
        of the pool it came from and of the pool tried first (int64, -1:
        none), whether more than the first pool was used (uint8), the
        reservation token (uint64, 0: none), the top reason code of its
        breakdown (int8, the kernel's reason codes, -1: nothing rejected); the
        attempt records of the whole batch as one bytes object, job ``i``'s
        being records ``offsets[i]`` to ``offsets[i + 1]`` (int32, n + 1).
        """
        cdef CompiledSnapshot cs = snapshot.compiled
        cdef Py_ssize_t n, i, k, base, failed_at = -1
        cdef list c_src = None, c_tgt = None, c_types = None, c_public = None, c_pref = None
        cdef list c_tenant = None, c_excl = None, c_key = None, c_sid = None, c_req = None
        cdef JobIn* js = NULL
        cdef JobIn* j
        cdef JobOut* outs = NULL
        cdef JobOut* o
        cdef int32_t* sess = NULL
        cdef uint64_t* skeys = NULL
        cdef int64_t* eoff = NULL
        cdef int32_t* scratch = NULL
        cdef int32_t* dst
        cdef const int32_t* recs
        cdef const int32_t* rec
        cdef IntBuf excl, att
        cdef int rc = 0, code
        cdef int32_t s, p
        cdef bint binding, started = False
        cdef object v, src, tgt, pref, tenant, excluded, sid, required
        cdef tuple f
        cdef str key
        if cs is None or not cs.named or cs.loads is not self.loads:
            raise ValueError("Dispatcher.select_batch: the snapshot is not one of this dispatcher's generations")
        if jobs is not None:
            n = len(jobs)
        else:
            if columns is None or len(columns) != 10:
                raise ValueError("Dispatcher.select_batch: give jobs, or columns as a tuple of ten lists")
            c_src, c_tgt, c_types, c_public, c_pref, c_tenant, c_excl, c_key, c_sid, c_req = columns
            n = len(c_src)
            for v in columns:
                if len(<list>v) != n:
                    raise ValueError("Dispatcher.select_batch: every column needs one entry per job")
        binding = bind_session and self.sessions is not None
        node_col = np.full(n, -1, dtype=np.int32)
        pool_col = np.full(n, -1, dtype=np.int64)
        pref_col = np.full(n, -1, dtype=np.int64)
        fallback_col = np.zeros(n, dtype=np.uint8)
        token_col = np.zeros(n, dtype=np.uint64)
        reason_col = np.full(n, -1, dtype=np.int8)
        offset_col = np.zeros(n + 1, dtype=np.int32)
        cdef int32_t[::1] o_node = node_col
        cdef int64_t[::1] o_pool = pool_col
        cdef int64_t[::1] o_pref = pref_col
        cdef uint8_t[::1] o_fallback = fallback_col
        cdef uint64_t[::1] o_token = token_col
        cdef int8_t[::1] o_reason = reason_col
        cdef int32_t[::1] o_offset = offset_col
        excl.data = NULL
        excl.size = 0
        excl.capacity = 0
        att.data = NULL
        att.size = 0
        att.capacity = 0
        try:
            js = <JobIn*>malloc((n + 1) * sizeof(JobIn))
            outs = <JobOut*>malloc((n + 1) * sizeof(JobOut))
            sess = <int32_t*>malloc((n + 1) * sizeof(int32_t))
            skeys = <uint64_t*>malloc((2 * n + 1) * sizeof(uint64_t))
            eoff = <int64_t*>malloc((n + 1) * sizeof(int64_t))
            scratch = <int32_t*>malloc(cs.scratch_ints() * sizeof(int32_t))
            if js == NULL or outs == NULL or sess == NULL or skeys == NULL or eoff == NULL or scratch == NULL:
                raise MemoryError()
            # 1. with the GIL: each job's names as indices, its session binding (in order)
            for i in range(n):
                if jobs is not None:
                    f = self.job_fields(<object>PyList_GET_ITEM(jobs, i))  # JOB_FIELDS order
                    src = f[0]
                    tgt = f[1]
                    types = f[2]
                    public = f[3]
                    pref = f[4]
                    tenant = f[5]
                    key = f[6]
                    sid = f[7] if binding else None
                    excluded = f[8]
                    required = f[9] if sid is not None else None
                else:
                    src = <object>PyList_GET_ITEM(c_src, i)
                    tgt = <object>PyList_GET_ITEM(c_tgt, i)
                    types = <object>PyList_GET_ITEM(c_types, i)
                    public = <object>PyList_GET_ITEM(c_public, i)
                    pref = <object>PyList_GET_ITEM(c_pref, i)
                    tenant = <object>PyList_GET_ITEM(c_tenant, i)
                    excluded = <object>PyList_GET_ITEM(c_excl, i)
                    key = <str>PyList_GET_ITEM(c_key, i)
                    sid = <object>PyList_GET_ITEM(c_sid, i) if binding else None
                    required = <object>PyList_GET_ITEM(c_req, i) if sid is not None else None
                j = &js[i]
                translate(cs, src, tgt, types, public, pref, tenant, key, j)
                j.bound_pool = -1
                j.only_pool = -1
                eoff[i] = excl.size
                if excluded:
                    for node_id in excluded:
                        k = cs.node_of(node_id)
                        if k >= 0:
                            dst = buf_push(&excl, 1)
                            if dst == NULL:
                                raise MemoryError()
                            dst[0] = <int32_t>k
                j.n_excluded = excl.size - eoff[i]
                j.excluded = NULL
                sess[i] = -1
                if sid is not None:
                    s = self.sessions.touch(sid, now)
                    sess[i] = s
                    skeys[2 * i] = self.sessions.slots[s].key
                    skeys[2 * i + 1] = self.sessions.slots[s].key2
                    j.bound_pool = self.bind(cs, s, j, src, tgt, required)
            for i in range(n):  # the buffer has stopped moving
                if js[i].n_excluded:
                    js[i].excluded = excl.data + eoff[i]
            # 2. without the GIL: the kernel for every job, in order
            self.counts[C_STARTED] += n
            started = True
            with nogil:
                for i in range(n):
                    o_offset[i] = <int32_t>(att.size // ATT_WIDTH)
                    rc = cs.select_job(&js[i], now, &att, scratch, &outs[i], True)
                    if rc < 0:
                        failed_at = i
                        break
                o_offset[n] = <int32_t>(att.size // ATT_WIDTH)
            if rc < 0:  # out of memory: nothing may stay held without a token
                for k in range(failed_at):
                    if outs[k].node >= 0:
                        unreserve(self.loads.at(cs.slot[outs[k].node]))
                raise MemoryError()
            records = PyBytes_FromStringAndSize(<char*>att.data, att.size * sizeof(int32_t))
            # 3. with the GIL, C only: tokens (all or none), counters, the sessions' nodes
            for i in range(n):
                if outs[i].node >= 0:
                    try:
                        o_token[i] = self.add_entry(cs.slot[outs[i].node], cs.serial[outs[i].node], now)
                    except BaseException:
                        for k in range(n):
                            if outs[k].node < 0:
                                continue
                            if k < i:
                                self.drop_entry(self.find(o_token[k]))
                                o_token[k] = 0
                            unreserve(self.loads.at(cs.slot[outs[k].node]))
                        raise
            recs = <const int32_t*>att.data
            for i in range(n):
                o = &outs[i]
                base = o_offset[i]
                o_node[i] = o.node
                o_fallback[i] = o.fallback != 0 or o.n_attempts > 1
                if o.preferred_pool >= 0:
                    o_pref[i] = cs.pool_id_arr[o.preferred_pool]
                self.counts[C_SELECTIONS] += 1
                if o.node >= 0:
                    rec = &recs[(base + o.picked) * ATT_WIDTH]
                    p = rec[ATT_POOL]
                    if p >= 0:
                        o_pool[i] = cs.pool_id_arr[p]
                    code = failure_code(rec, -1)
                    s = sess[i]
                    # the table may have given the slot to another session meanwhile
                    if (s >= 0 and self.sessions.slots[s].key == skeys[2 * i]
                            and self.sessions.slots[s].key2 == skeys[2 * i + 1]):
                        self.sessions.set_last(s, cs.node_names, o.node)
                else:
                    code = failure_code(&recs[base * ATT_WIDTH] if o.n_attempts > 0 else NULL, o.empty_reason)
                    self.counts[C_FAILED] += 1
                    self.counts[C_FAILED_REASON + code] += 1
                o_reason[i] = <int8_t>(code if code < N_REASON_SLOTS - 1 else -1)
        finally:
            if started:
                self.counts[C_FINISHED] += n
            free(js)
            free(outs)
            free(sess)
            free(skeys)
            free(eoff)
            free(scratch)
            free(excl.data)
            free(att.data)
        return node_col, pool_col, pref_col, fallback_col, token_col, reason_col, records, offset_col
