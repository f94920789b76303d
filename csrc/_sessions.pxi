# The fast path's session table (included by _hotpath.pyx, before _dispatch.pxi).
#
# The same rules as pyscheduler.state.sessions.SessionRuntimeManager (the
# reference): entries expire after idle_ttl_s without use (checked when a
# session is used, and by expire()), and at most max_sessions are kept, the
# least recently used evicted first. Sessions are found by the FNV-1a-64 hash
# of their id in an open-addressing table (linear probing, backward-shift
# deletion); a second 64-bit hash of the id from another offset basis must
# match too, so the hot path compares integers in one record and never
# dereferences the id (kept only for reading). Like the reservation table, it
# is only touched with the GIL held.

from cpython.ref cimport Py_INCREF, Py_XDECREF


cdef extern from *:
    """
    #define PYSCHED_FNV64_ALT_BASIS 0x84222325cbf29ce4ULL
    """
    const uint64_t _FNV64_ALT_BASIS "PYSCHED_FNV64_ALT_BASIS"


cdef inline int session_keys(str session_id, uint64_t* key, uint64_t* key2) except -1:
    cdef Py_ssize_t n = 0
    cdef const unsigned char* b = _utf8(session_id, &n)
    key[0] = fnv1a64_bytes(b, n)
    key2[0] = fnv1a64_update(_FNV64_ALT_BASIS, b, n)
    return 0


cdef inline uint64_t pair_key(str src, str tgt) except? 0:
    """FNV-1a-64 of src's UTF-8 bytes, a 0 byte, then tgt's."""
    cdef Py_ssize_t n = 0
    cdef const unsigned char* b = _utf8(src, &n)
    cdef unsigned char zero = 0
    cdef uint64_t h = fnv1a64_update(fnv1a64_bytes(b, n), &zero, 1)
    b = _utf8(tgt, &n)
    return fnv1a64_update(h, b, n)

cdef enum:
    SESSIONS_INITIAL = 256            # entries allocated by the first session

@cython.final
cdef class SessionTable:
    """Session bindings of the fast path, bounded (LRU) and expiring."""


    def __cinit__(self):
        self.slots = NULL
        self.index = NULL
        self.cap = 0
        self.n = 0
        self.index_mask = -1
        self.head = -1
        self.tail = -1
        self.free_head = -1
        self.ids = []
        self.pairs = []

    def __init__(self, Py_ssize_t max_sessions, float64_t idle_ttl_s):
        if max_sessions < 1 or max_sessions > (1 << 30):
            raise ValueError(f"max_sessions must be in [1, 2**30], got {max_sessions}")
        if not idle_ttl_s > 0:
            raise ValueError(f"idle_ttl_s must be > 0, got {idle_ttl_s}")
        self.max_sessions = max_sessions
        self.idle_ttl_s = idle_ttl_s

    def __dealloc__(self):
        cdef Py_ssize_t k
        if self.slots != NULL:
            for k in range(self.cap):
                Py_XDECREF(self.slots[k].last_names)
        free(self.slots)
        free(self.index)

    def __len__(self):
        return self.n

    # -- storage ------------------------------------------------------------------------

    cdef int grow(self) except -1:
        """Double the slots (up to max_sessions) and rebuild the hash index."""
        cdef Py_ssize_t cap = min(max(self.cap * 2, SESSIONS_INITIAL), self.max_sessions), k
        cdef Py_ssize_t size = 4
        cdef SessionSlot* data
        cdef int32_t* index
        while size < 2 * cap:
            size *= 2
        data = <SessionSlot*>realloc(self.slots, cap * sizeof(SessionSlot))
        if data == NULL:
            raise MemoryError()
        self.slots = data
        index = <int32_t*>malloc(size * sizeof(int32_t))
        if index == NULL:
            raise MemoryError()
        for k in range(size):
            index[k] = -1
        free(self.index)
        self.index = index
        self.index_mask = size - 1
        for k in range(self.cap, cap):  # new slots go on the free list
            data[k].next = <int32_t>(k + 1) if k + 1 < cap else self.free_head
            data[k].prev = -1
            data[k].last_names = NULL
            data[k].last_node = -1
        if cap > self.cap:
            self.free_head = <int32_t>self.cap
        self.ids.extend([None] * (cap - self.cap))
        self.pairs.extend([None] * (cap - self.cap))
        self.cap = cap
        k = self.head
        while k >= 0:  # re-index the live slots
            self.index_put(<int32_t>k)
            k = data[k].next
        return 0

    cdef void index_put(self, int32_t s) noexcept:
        cdef Py_ssize_t h = <Py_ssize_t>(self.slots[s].key & <uint64_t>self.index_mask)
        while self.index[h] >= 0:
            h = (h + 1) & self.index_mask
        self.index[h] = s

    cdef Py_ssize_t index_find(self, uint64_t key, uint64_t key2) noexcept:
        """The hash-table position of the session with these keys, or -1."""
        cdef Py_ssize_t h
        cdef int32_t s
        if self.index == NULL:
            return -1
        h = <Py_ssize_t>(key & <uint64_t>self.index_mask)
        while True:
            s = self.index[h]
            if s < 0:
                return -1
            if self.slots[s].key == key and self.slots[s].key2 == key2:
                return h
            h = (h + 1) & self.index_mask

    cdef void index_delete(self, Py_ssize_t h) noexcept:
        """Empty position ``h``, shifting later entries of its probe run back."""
        cdef Py_ssize_t j = h, home
        cdef int32_t s
        while True:
            j = (j + 1) & self.index_mask
            s = self.index[j]
            if s < 0:
                break
            home = <Py_ssize_t>(self.slots[s].key & <uint64_t>self.index_mask)
            # move s back to h unless its home lies cyclically in (h, j]
            if (j > h and (home <= h or home > j)) or (j < h and (home <= h and home > j)):
                self.index[h] = s
                h = j
        self.index[h] = -1

    # -- the LRU list ---------------------------------------------------------------------

    cdef void unlink(self, int32_t s) noexcept:
        cdef SessionSlot* e = &self.slots[s]
        if e.prev >= 0:
            self.slots[e.prev].next = e.next
        else:
            self.head = e.next
        if e.next >= 0:
            self.slots[e.next].prev = e.prev
        else:
            self.tail = e.prev

    cdef void push_front(self, int32_t s) noexcept:
        cdef SessionSlot* e = &self.slots[s]
        e.prev = -1
        e.next = self.head
        if self.head >= 0:
            self.slots[self.head].prev = s
        self.head = s
        if self.tail < 0:
            self.tail = s

    cdef void remove(self, int32_t s, Py_ssize_t h) noexcept:
        """Forget slot ``s`` (at hash position ``h``); it goes on the free list."""
        self.index_delete(h)
        self.unlink(s)
        self.ids[s] = None
        self.pairs[s] = None
        self.set_last(s, None, -1)
        self.slots[s].next = self.free_head
        self.free_head = s
        self.n -= 1

    cdef void reset(self, int32_t s, float64_t now) noexcept:
        self.slots[s].last_seen = now
        self.slots[s].types = 0  # no pair yet (a job's types are never 0)
        self.slots[s].pair_key = 0
        self.slots[s].bound_pool = -1
        self.slots[s].bound_index = -1
        self.slots[s].checked = -1
        self.pairs[s] = None
        self.set_last(s, None, -1)

    cdef void set_last(self, int32_t s, object names, int32_t node) noexcept:
        """Remember the last node: ``names[node]`` (a generation's node ids), or
        ``names`` itself when ``node`` is -1 (a node id); None forgets it."""
        cdef SessionSlot* e = &self.slots[s]
        cdef PyObject* old = e.last_names
        e.last_node = node
        if names is None:
            e.last_names = NULL
        elif old != <PyObject*>names:
            Py_INCREF(names)
            e.last_names = <PyObject*>names
        else:
            return
        Py_XDECREF(old)  # last: its deallocation cannot see a half-updated record

    # -- use ----------------------------------------------------------------------------

    cdef int32_t touch(self, str session_id, float64_t now) except -1:
        """The session's slot (a new one if unknown or idle past the TTL), marked
        as just used: SessionRuntimeManager.get_or_create."""
        cdef uint64_t key, key2
        cdef Py_ssize_t h
        cdef int32_t s
        session_keys(session_id, &key, &key2)
        h = self.index_find(key, key2)
        if h >= 0:
            s = self.index[h]
            if now - self.slots[s].last_seen > self.idle_ttl_s:
                self.expired += 1
                self.reset(s, now)  # the same as dropping it and making a new one
            else:
                self.slots[s].last_seen = now
            self.unlink(s)
            self.push_front(s)
            return s
        if self.n >= self.max_sessions:
            s = self.tail
            self.remove(s, self.index_find(self.slots[s].key, self.slots[s].key2))
            self.evicted += 1
        if self.free_head < 0:
            self.grow()
        s = self.free_head
        self.free_head = self.slots[s].next
        self.slots[s].key = key
        self.slots[s].key2 = key2
        self.ids[s] = session_id
        self.reset(s, now)
        self.index_put(s)
        self.push_front(s)
        self.n += 1
        return s

    def use(self, str session_id not None, float64_t now):
        """Mark a session as used at ``now`` (making it, or remaking it when idle
        past the TTL, evicting the least recently used when full), as
        ``SessionRuntimeManager.get_or_create`` does."""
        self.touch(session_id, now)

    def expire(self, float64_t now):
        """Drop every session idle for longer than ``idle_ttl_s``; return how many."""
        cdef int32_t s = self.tail, prev
        cdef Py_ssize_t dropped = 0
        while s >= 0:
            prev = self.slots[s].prev
            if now - self.slots[s].last_seen > self.idle_ttl_s:
                self.remove(s, self.index_find(self.slots[s].key, self.slots[s].key2))
                dropped += 1
            s = prev
        self.expired += dropped
        return dropped

    def get(self, str session_id not None):
        """``(last_seen, pair, bound_pool, last_node)`` of a session, or None."""
        cdef uint64_t key, key2
        cdef Py_ssize_t h
        cdef int32_t s
        session_keys(session_id, &key, &key2)
        h = self.index_find(key, key2)
        if h < 0:
            return None
        s = self.index[h]
        bound = None if self.slots[s].bound_pool < 0 else self.slots[s].bound_pool
        last = None
        if self.slots[s].last_names != NULL:
            last = <object>self.slots[s].last_names
            if self.slots[s].last_node >= 0:
                last = (<tuple>last)[self.slots[s].last_node]
        return (self.slots[s].last_seen, self.pairs[s], bound, last)
