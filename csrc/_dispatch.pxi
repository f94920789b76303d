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
from libc.string cimport memset


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
                 uint64_t entropy):
        self.loads = loads
        self.make_selection = make_selection
        self.decode = decode
        self.selection_type = selection_type
        self.rng = _mix64(entropy)
        self.epoch = (self.rng >> (64 - TOKEN_EPOCH_BITS)) or 1
        self.rng = _mix64(self.rng + 1)

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

    def end(self, selection_or_token, bint commit):
        """Commit or release by a ``Selection`` or a token: 1 if it ended a live
        reservation of this table, 0 if it names none (forged, reused, expired,
        its node gone, or ``None``), -1 if it is not this table's token (another
        epoch: the caller asks its other table), -2 if it is neither."""
        cdef object tok = selection_or_token
        cdef uint64_t token
        cdef Py_ssize_t k
        cdef int32_t slot
        cdef NodeLoad* rec
        cdef bint alive
        if type(tok) is self.selection_type:
            tok = (<object>tok)._reservation
            if tok is None:
                return 0
        if type(tok) is not int:
            return -2
        if tok < 0 or tok >= (1 << 63):
            return -1
        token = PyLong_AsUnsignedLongLong(tok)
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

    def add(self, Py_ssize_t slot, int64_t serial, float64_t now):
        """Record a place already reserved on ``slot`` (by a batch kernel) and
        count the selection; return its token."""
        if slot < 0 or slot >= self.loads.capacity:
            raise IndexError(f"load slot {slot} out of range")
        self.counts[C_SELECTIONS] += 1
        return self.add_entry(<int32_t>slot, serial, now)

    def count_failure(self, int code):
        """Count one failed selection under reason ``code`` (-1: nothing rejected)."""
        if code < -1 or code >= N_REASON_SLOTS - 1:
            raise ValueError(f"reason code {code} out of range")
        self.counts[C_SELECTIONS] += 1
        self.counts[C_FAILED] += 1
        self.counts[C_FAILED_REASON + (code if code >= 0 else N_REASON_SLOTS - 1)] += 1

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

    def begin(self, Py_ssize_t n):
        """``n`` decisions begin outside :meth:`select` (a batch kernel)."""
        self.counts[C_STARTED] += n

    def done(self, Py_ssize_t n):
        """``n`` decisions begun with :meth:`begin` are finished."""
        self.counts[C_FINISHED] += n

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
        cdef Py_ssize_t n = 0
        cdef const unsigned char* kb
        cdef int32_t excl_stack[EXCL_STACK]
        cdef int32_t* excl = excl_stack
        cdef object v
        cdef str key
        cdef int32_t session = -1
        cdef Py_ssize_t i
        cdef uint64_t key1 = 0, key2 = 0
        cdef object sid = None
        src = job.src_lang
        if src == cs.auto_code:
            j.src = LANG_AUTO
        else:
            v = cs.lang_index.get(src)
            j.src = LANG_UNKNOWN if v is None else <int32_t>v
        v = cs.lang_index.get(job.tgt_lang)
        j.tgt = LANG_UNKNOWN if v is None else <int32_t>v
        j.types = job.types_mask
        j.public = job.public
        v = job.preferred_node_id
        j.preferred = -1
        if v is not None:
            j.preferred = <int32_t>cs.node_of(v)
        v = job.tenant_id
        j.tenant_pool = -1
        if v is not None:
            v = cs.tenant_index.get(v)
            if v is not None:
                j.tenant_pool = <int32_t>v
        j.bound_pool = bound_pool
        j.only_pool = only_pool
        key = job.key
        kb = _utf8(key, &n)
        j.h_key = fnv1a64_bytes(kb, n)
        j.excluded = NULL
        j.n_excluded = 0
        if bind_session and self.sessions is not None:
            sid = job.session_id
            if sid is not None:
                session = self.sessions.touch(sid, now)
                key1 = self.sessions.slots[session].key
                key2 = self.sessions.slots[session].key2
                j.bound_pool = self.bind(cs, session, &j, job)
        excluded = job.exclude_node_ids
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

    def session_bound_pool(self, snapshot, job, float64_t now):
        """The bound pool index of ``job``'s session in ``snapshot`` (binding it
        if needed; -1: none) — for a batch that calls the kernel itself."""
        cdef CompiledSnapshot cs = snapshot.compiled
        cdef JobIn j
        cdef Py_ssize_t n = 0
        cdef const unsigned char* kb
        cdef object v
        cdef str key
        if cs is None or not cs.named or cs.loads is not self.loads:
            raise ValueError("Dispatcher.session_bound_pool: the snapshot is not one of this dispatcher's generations")
        sid = job.session_id
        if self.sessions is None or sid is None:
            return -1
        src = job.src_lang
        if src == cs.auto_code:
            j.src = LANG_AUTO
        else:
            v = cs.lang_index.get(src)
            j.src = LANG_UNKNOWN if v is None else <int32_t>v
        v = cs.lang_index.get(job.tgt_lang)
        j.tgt = LANG_UNKNOWN if v is None else <int32_t>v
        j.types = job.types_mask
        key = job.key
        kb = _utf8(key, &n)
        j.h_key = fnv1a64_bytes(kb, n)
        return self.bind(cs, self.sessions.touch(sid, now), &j, job)

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

    cdef bint unchanged(self, int32_t s, str src, str tgt, int32_t types, job, int64_t generation) except -1:
        """Whether session slot ``s``'s binding stands as it is: the same pair,
        already checked against ``generation``. A new pair drops the binding."""
        cdef SessionTable t = self.sessions
        cdef uint64_t key = pair_key(src, tgt)
        cdef SessionSlot* e = &t.slots[s]
        if e.types == 0 or e.types != types or e.pair_key != key:
            e.types = types
            e.pair_key = key
            e.bound_pool = -1
            t.pairs[s] = (src, tgt, job.required_types)  # for reading only
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

    cdef int32_t bind(self, CompiledSnapshot cs, int32_t s, JobIn* j, job) except -2:
        """The bound pool index of session slot ``s`` for this job in ``cs``,
        eligibility read from the compiled language index (-1: none)."""
        cdef SessionTable t = self.sessions
        cdef int32_t order_stack[256]
        cdef int32_t* order = order_stack
        cdef Py_ssize_t n = 0, k, found
        cdef int64_t bound
        src = job.src_lang
        tgt = job.tgt_lang
        if self.unchanged(s, src, tgt, j.types, job, cs.version):
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
        if not self.unchanged(s, job.src_lang, job.tgt_lang, job.types_mask, job, generation):
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
                return self.make_selection(None, None, None, False, "fast", None, decode)
            return self.make_selection(
                None, None, cs.pool_keys[out.preferred_pool] if out.preferred_pool >= 0 else None,
                out.fallback != 0 or out.n_attempts > 1, "fast", None, decode)
        try:
            token = self.add_entry(cs.slot[out.node], cs.serial[out.node], now)
        except BaseException:
            unreserve(self.loads.at(cs.slot[out.node]))  # nothing may stay held without a token
            raise
        self.counts[C_SELECTIONS] += 1
        pool = recs[out.picked * ATT_WIDTH + ATT_POOL]
        return self.make_selection(
            cs.node_names[out.node],
            cs.pool_keys[pool] if pool >= 0 else None,
            cs.pool_keys[out.preferred_pool] if out.preferred_pool >= 0 else None,
            out.fallback != 0 or out.n_attempts > 1,
            "fast",
            token,
            decode,
        )
