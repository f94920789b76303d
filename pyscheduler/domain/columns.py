"""``JobColumns``: a batch of jobs held as columns, one list per ``JobRequest`` field.

A dispatcher that keeps its queue as columns (arrays of language codes,
session ids, ...) hands them to ``NodeRegistry.select_nodes_batch`` without
building one ``JobRequest`` per job. Every row is validated once, when the
columns are made, by exactly the rules of ``JobRequest`` (the same checks, the
same error classes); a bad row raises that error with the row number in its
message, and nothing is made. Row ``i`` places exactly as
``JobColumns.row(i)`` — a ``JobRequest`` — would.

A column is a sequence with one entry per job, or a single value for every
job (a ``str`` is a single value; so is a ``ServiceType`` or a ``bool``).
``exclude_node_ids`` takes one set of node ids per job, or ``None`` (no
exclusions anywhere).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from .errors import InvalidRequestError
from .model import CORE_TYPES, JobRequest, ServiceType

__all__ = ["JobColumns"]

_FIELDS = (
    "src_lang",
    "tgt_lang",
    "required_types",
    "session_id",
    "tenant_id",
    "routing_key",
    "exclude_node_ids",
    "public",
    "preferred_node_id",
)
_NO_EXCLUSIONS: frozenset[str] = frozenset()


def _is_single(value: Any) -> bool:
    """Whether a column argument is one value for every row."""
    if value is None or isinstance(value, (str, bytes, bool, int, ServiceType)):
        return True
    return not (hasattr(value, "__len__") and hasattr(value, "__getitem__"))


def _as_list(value: Any, name: str) -> list[Any] | None:
    """A per-row column as a list (numpy arrays through ``tolist``), or None for a single value."""
    if _is_single(value):
        return None
    tolist = getattr(value, "tolist", None)
    if callable(tolist) and getattr(value, "ndim", 1) == 1:
        return tolist()
    try:
        return list(value)
    except TypeError:
        raise InvalidRequestError(f"JobColumns.{name} must be a sequence or one value, got {value!r:.200}") from None


class JobColumns(Sequence[JobRequest]):
    """Jobs as columns, validated row by row with ``JobRequest``'s rules.

    A ``Sequence[JobRequest]`` too (rows are made when read), so code that
    expects a list of jobs can take it; ``NodeRegistry.select_nodes_batch``
    reads the columns directly.
    """

    __slots__ = ("_n", "_src", "_tgt", "_types", "_masks", "_session", "_tenant", "_routing",
                 "_excluded", "_public", "_preferred", "_keys")

    def __init__(
        self,
        src_lang: Any,
        tgt_lang: Any,
        required_types: Any = CORE_TYPES,
        session_id: Any = None,
        tenant_id: Any = None,
        routing_key: Any = None,
        exclude_node_ids: Any = None,
        public: Any = True,
        preferred_node_id: Any = None,
    ) -> None:
        given = dict(zip(_FIELDS, (src_lang, tgt_lang, required_types, session_id, tenant_id, routing_key,
                                   exclude_node_ids, public, preferred_node_id)))
        excluded = given.pop("exclude_node_ids")
        lists = {name: _as_list(value, name) for name, value in given.items()}
        excl_list = None
        if excluded is not None:
            if isinstance(excluded, (str, bytes)) or not hasattr(excluded, "__iter__"):
                raise InvalidRequestError(
                    f"JobColumns.exclude_node_ids must hold one set of node ids per job, got {excluded!r:.200}"
                )
            excl_list = list(excluded)
        lengths = {name: len(col) for name, col in lists.items() if col is not None}
        if excl_list is not None:
            lengths["exclude_node_ids"] = len(excl_list)
        if not lengths:
            raise InvalidRequestError("JobColumns needs at least one column with one entry per job")
        n = next(iter(lengths.values()))
        for name, length in lengths.items():
            if length != n:
                raise InvalidRequestError(
                    f"JobColumns.{name} has {length} entries, expected {n} (one per job, as "
                    f"{next(iter(lengths))} has)"
                )
        cols = {name: (col if col is not None else [given[name]] * n) for name, col in lists.items()}
        excl = excl_list if excl_list is not None else [_NO_EXCLUSIONS] * n
        # validate each row by JobRequest's own rules; the distinct values of the
        # repetitive columns (languages, types) are checked once each
        src_out: list[str] = [""] * n
        tgt_out: list[str] = [""] * n
        types_out: list[ServiceType] = [CORE_TYPES] * n
        excl_out: list[frozenset[str]] = [_NO_EXCLUSIONS] * n
        keys: list[str] = [""] * n
        session_out: list[str | None] = [None] * n
        tenant_out: list[str | None] = [None] * n
        routing_out: list[str | None] = [None] * n
        public_out: list[bool] = [True] * n
        preferred_out: list[str | None] = [None] * n
        seen: dict[tuple[Any, ...], JobRequest] = {}
        session, tenant, routing = cols["session_id"], cols["tenant_id"], cols["routing_key"]
        public_col, preferred = cols["public"], cols["preferred_node_id"]
        for i in range(n):
            row_excl = excl[i]
            if row_excl is None:
                row_excl = _NO_EXCLUSIONS
            try:
                shape = (cols["src_lang"][i], cols["tgt_lang"][i], cols["required_types"][i])
                base = seen.get(shape) if all(type(v) in (str, ServiceType, int) for v in shape) else None
                if base is None:
                    base = JobRequest(*shape)
                    if all(type(v) in (str, ServiceType, int) for v in shape):
                        seen[shape] = base
                if (session[i] is None and tenant[i] is None and routing[i] is None and not row_excl
                        and public_col[i] is True and preferred[i] is None):
                    job = base
                else:
                    job = JobRequest(base.src_lang, base.tgt_lang, base.required_types, session[i], tenant[i],
                                     routing[i], row_excl, public_col[i], preferred[i])
            except InvalidRequestError as err:
                raise type(err)(f"JobColumns row {i}: {err}") from None
            src_out[i] = job.src_lang
            tgt_out[i] = job.tgt_lang
            types_out[i] = job.required_types
            excl_out[i] = job.exclude_node_ids
            keys[i] = job.key
            session_out[i] = job.session_id
            tenant_out[i] = job.tenant_id
            routing_out[i] = job.routing_key
            public_out[i] = job.public
            preferred_out[i] = job.preferred_node_id
        self._n = n
        self._src = src_out
        self._tgt = tgt_out
        self._types = types_out
        self._masks = [int(t) for t in types_out]
        self._session = session_out
        self._tenant = tenant_out
        self._routing = routing_out
        self._excluded = excl_out
        self._public = public_out
        self._preferred = preferred_out
        self._keys = keys

    @classmethod
    def from_requests(cls, jobs: Sequence[JobRequest]) -> JobColumns:
        """The columns of a list of ``JobRequest`` (each row equal to its job)."""
        jobs = list(jobs)
        for i, job in enumerate(jobs):
            if not isinstance(job, JobRequest):
                raise InvalidRequestError(f"JobColumns row {i}: expected a JobRequest, got {job!r:.200}")
        return cls(
            [j.src_lang for j in jobs], [j.tgt_lang for j in jobs], [j.required_types for j in jobs],
            [j.session_id for j in jobs], [j.tenant_id for j in jobs], [j.routing_key for j in jobs],
            [j.exclude_node_ids for j in jobs], [j.public for j in jobs], [j.preferred_node_id for j in jobs],
        )

    def row(self, i: int) -> JobRequest:
        """Row ``i`` as a ``JobRequest`` (places exactly as the row does)."""
        if not -self._n <= i < self._n:
            raise IndexError(f"JobColumns row {i} out of range ({self._n} rows)")
        i %= self._n
        return JobRequest(self._src[i], self._tgt[i], self._types[i], self._session[i], self._tenant[i],
                          self._routing[i], self._excluded[i], self._public[i], self._preferred[i])

    def dispatch_columns(self) -> tuple[list[Any], ...]:
        """The ten lists the compiled batch reads, in its order: ``src_lang``,
        ``tgt_lang``, ``types_mask``, ``public``, ``preferred_node_id``,
        ``tenant_id``, ``exclude_node_ids``, the routing key (docs/DESIGN.md §5),
        ``session_id``, ``required_types``. Read only: do not change them."""
        return (self._src, self._tgt, self._masks, self._public, self._preferred, self._tenant,
                self._excluded, self._keys, self._session, self._types)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self.row(k) for k in range(*i.indices(self._n))]
        return self.row(i)

    def __iter__(self) -> Iterator[JobRequest]:
        return (self.row(k) for k in range(self._n))

    def __repr__(self) -> str:
        return f"JobColumns({self._n} jobs)"
