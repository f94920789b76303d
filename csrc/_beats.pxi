# Load-only heartbeats of nodes in the steady state, in one call (included by _hotpath.pyx).
#
# A node is *steady* when a load-only, healthy beat changes nothing but its
# load record: it is READY, its last beat was healthy (no unhealthy streak),
# its installed services are healthy, and it is neither draining nor
# disconnected. The Python lifecycle code (pyscheduler/state/nodes.py) admits
# a node here when it becomes steady and evicts it when it stops being so, all
# under the registry lock; this table only answers "is this id steady, and at
# which slot" (one dict lookup) and writes the load record.
#
# Concurrency: every method runs with the GIL held. ``beat`` calls back into
# Python once, for the clock, before it looks at anything that can change;
# after that it runs no Python code until it returns, so its checks and its
# write are one step that no other Python thread can interleave with. It
# applies the beat only when the registry lock is free at that moment: a
# thread holding the lock (a sweep, a drain, a shadow comparison, ...) sees no
# beat land in the middle of its critical section, exactly as if the beat had
# waited for the lock. The load record itself is written as LoadTable.set_load
# writes it (running with a release store), for the nogil kernels.

from cpython.dict cimport PyDict_GetItem
from cpython.ref cimport PyObject
from cpython.long cimport PyLong_AsSsize_t

cdef extern from "Python.h":
    bint PyFloat_CheckExact(object o)
    bint PyLong_CheckExact(object o)
    bint PyUnicode_CheckExact(object o)
    # the same checks on a borrowed pointer (no reference taken)
    bint _float_exact "PyFloat_CheckExact"(PyObject* o)
    bint _long_exact "PyLong_CheckExact"(PyObject* o)
    double _float_value "PyFloat_AS_DOUBLE"(PyObject* o)
    long _long_value "PyLong_AsLongAndOverflow"(PyObject* o, int* overflow)
    ctypedef struct PyMemberDef:
        Py_ssize_t offset
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member
    PyObject* Py_None_ptr "Py_None"


cdef enum:
    HB_CPU = 0
    HB_MEMORY = 1
    HB_GPU = 2
    HB_JOBS = 3
    HB_SERVICES = 4
    HB_LANGUAGES = 5
    HB_FIELDS = 6

cdef inline PyObject* _field(object hb, Py_ssize_t offset) noexcept:
    """A slot of ``hb`` read in place (borrowed; NULL when the slot is unset)."""
    return (<PyObject**>((<char*><PyObject*>hb) + offset))[0]


@cython.final
cdef class SteadyBeats:
    """The steady nodes (id -> load slot) and the one-call load-only beat.

    ``lock_probe`` is the registry lock's ``locked`` method (a builtin: it must
    not run Python code, or another thread could take the lock between its
    answer and the write), ``clock`` the
    registry's clock and ``heartbeat_type`` the ``Heartbeat`` class: a beat
    of any other type (a subclass included) is left to the Python path.
    """

    def __cinit__(self):
        self.steady = {}  # off (enabled is 0) until __init__ ran

    def __init__(self, LoadTable loads not None, lock_probe, clock, heartbeat_type):
        if not callable(lock_probe):
            raise TypeError(f"lock_probe must be callable, got {lock_probe!r}")
        if not callable(clock):
            raise TypeError(f"clock must be callable, got {clock!r}")
        if not isinstance(heartbeat_type, type):
            raise TypeError(f"heartbeat_type must be a class, got {heartbeat_type!r}")
        cdef Py_ssize_t k
        cdef object descr
        for k, name in enumerate(("cpu_usage", "memory_usage", "gpu_usage", "current_jobs",
                                  "installed_services", "language_capabilities")):  # HB_* order
            # the Heartbeat fields are __slots__: member descriptors holding each
            # field's offset in the object, read in place by beat()
            descr = heartbeat_type.__dict__.get(name) if isinstance(heartbeat_type, type) else None
            if type(descr).__name__ != "member_descriptor":
                raise TypeError(f"heartbeat_type must keep {name!r} in __slots__, got {heartbeat_type!r}")
            self.offsets[k] = (<PyMemberDescrObject*><PyObject*>descr).d_member.offset
        self.loads = loads
        self.steady.clear()
        self.lock_probe = lock_probe
        self.clock = clock
        self.hb_type = heartbeat_type
        self.enabled = True
        self.quiet = True
        self.changes = 0
        self.applied = 0

    def __len__(self):
        return len(self.steady)

    def admit(self, node_id, Py_ssize_t slot):
        """Mark ``node_id`` (whose load record is at ``slot``) steady. An id of a
        ``str`` subclass is not admitted (its comparisons could run Python code
        inside ``beat``): such a node's beats take the Python path."""
        if self.loads is None:
            raise RuntimeError("SteadyBeats.__init__ was not called")
        self.loads._checked(slot)  # IndexError for a slot the table does not hold
        if PyUnicode_CheckExact(node_id):
            self.steady[node_id] = slot
            self.changes += 1

    def evict(self, node_id, Py_ssize_t slot):
        """``node_id`` at ``slot`` is no longer steady (nothing happens when the
        id is steady at another slot: a later registration of the same id)."""
        if PyUnicode_CheckExact(node_id) and self.steady.get(node_id) == slot:
            del self.steady[node_id]
        self.changes += 1

    def slot_of(self, node_id):
        """The load slot of a steady node, or -1 when ``node_id`` is not steady."""
        return self.steady.get(node_id, -1)

    def set_quiet(self, bint quiet):
        """Whether no change listener is subscribed (a beat with listeners goes
        through the Python path, which emits the event)."""
        self.quiet = quiet
        self.changes += 1

    def set_enabled(self, bint enabled):
        """Switch the compiled beat on or off (off: every beat takes the Python path)."""
        if self.loads is None:
            raise RuntimeError("SteadyBeats.__init__ was not called")
        self.enabled = enabled
        self.changes += 1

    @property
    def is_enabled(self):
        return self.enabled

    def beat(self, node_id, hb):
        """Apply ``hb`` to ``node_id`` if that is a steady node's load-only, healthy
        beat and the registry lock is free.

        Returns True when applied (the node stays READY), None when the beat
        is not one for this path (the clock was not read), or ``(now,)`` when
        the clock was read but the registry lock was held or the steady set
        changed meanwhile: the Python path then applies the beat with that
        reading, so the clock is read once per beat either way. An exception
        raised by the clock, or a clock value that is not a number, propagates
        with nothing changed.
        """
        cdef PyObject* found
        cdef PyObject* cpu_obj
        cdef PyObject* memory_obj
        cdef PyObject* gpu_obj
        cdef PyObject* jobs_obj
        cdef Py_ssize_t slot
        cdef float64_t cpu, memory, gpu, now
        cdef long jobs
        cdef int overflow = 0
        cdef uint64_t changes
        cdef NodeLoad* rec
        if not (self.enabled and self.quiet):
            return None
        if type(hb) is not self.hb_type or not PyUnicode_CheckExact(node_id):
            return None
        found = PyDict_GetItem(self.steady, node_id)
        if found == NULL:
            return None
        # The exact Heartbeat type: its fields are read in place, at the offsets
        # of its slots. Not load only (membership may change): the Python path.
        if (_field(hb, self.offsets[HB_SERVICES]) != Py_None_ptr
                or _field(hb, self.offsets[HB_LANGUAGES]) != Py_None_ptr):
            return None
        cpu_obj = _field(hb, self.offsets[HB_CPU])
        memory_obj = _field(hb, self.offsets[HB_MEMORY])
        gpu_obj = _field(hb, self.offsets[HB_GPU])
        jobs_obj = _field(hb, self.offsets[HB_JOBS])
        # A Heartbeat validates itself; these checks only make sure that what is
        # written is what the Python path would write and that the beat is
        # healthy (usages finite in [0, 100]: a NaN fails every comparison).
        if (cpu_obj == NULL or memory_obj == NULL or gpu_obj == NULL or jobs_obj == NULL
                or not _float_exact(cpu_obj) or not _float_exact(memory_obj) or not _long_exact(jobs_obj)):
            return None
        cpu = _float_value(cpu_obj)
        memory = _float_value(memory_obj)
        if not (0.0 <= cpu <= 100.0 and 0.0 <= memory <= 100.0):
            return None
        if gpu_obj == Py_None_ptr:
            gpu = NAN
        elif _float_exact(gpu_obj):
            gpu = _float_value(gpu_obj)
            if not (0.0 <= gpu <= 100.0):
                return None
        else:
            return None
        jobs = _long_value(jobs_obj, &overflow)
        if overflow or jobs < 0 or jobs > 0x7FFFFFFF:
            return None
        slot = PyLong_AsSsize_t(<object>found)
        changes = self.changes
        now_obj = self.clock()  # the one call back into Python: other threads may run here
        now = now_obj  # TypeError for a clock value that is not a number, nothing changed
        # From here to the write: no Python code, so no other thread runs.
        if self.lock_probe() or self.changes != changes:
            return (now_obj,)
        rec = self.loads.at(slot)  # admitted slots were range-checked; the table never shrinks
        rec.cpu_usage = cpu
        rec.memory_usage = memory
        rec.gpu_usage = gpu
        rec.last_heartbeat = now
        pys_store(&rec.running, <int32_t>jobs)
        self.applied += 1
        return True
