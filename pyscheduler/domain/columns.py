"""``JobColumns``: a batch of jobs held as columns, one list per ``JobRequest`` field.

A dispatcher that keeps its queue as columns (arrays of language codes,
session ids, ...) hands them to ``NodeRegistry.select_nodes_batch`` without
building one ``JobRequest`` per job. Every row is validated once, when the
columns are made, by exactly the rules of ``JobRequest`` (the same checks, the
same error classes); a bad row raises that error with the row number in its
message, and nothing is made. Row ``i`` places exactly as
``JobColumns.row(i)`` — a ``JobRequest`` — would.

A column is a sequence with one entry per job, or a single value for every
job (a ``str`` is a single value; so is a ``ServiceType``, an ``int`` or a
``bool``; a list is always one entry per job, so a ``required_types`` shared
by every job is given as a ``ServiceType``, not as a list of names).
``exclude_node_ids`` takes one set of node ids per job (``None`` in a row:
none), or ``None`` (no exclusions anywhere).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from ._validate import check_bool, check_optional_id, check_text
from .errors import InvalidRequestError
from .languages import normalize_lang
from .limits import MAX_ROUTING_KEY_LENGTH
from .model import CORE_TYPES, JobRequest, ServiceType, _checked_excluded, parse_service_types

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
_APART = frozenset({str, type(None)})  # values of these types equal only values of the same type


def _checked_column(values: list[Any], check: Any) -> tuple[list[Any], int | None]:
    """``check`` applied to every value, each distinct value once: the checked
    column, and the first row whose value fails (None: none fails). Values are
    told apart by type too (``1``, ``1.0`` and ``True`` are checked apart)."""
    try:
        kinds = set(map(type, values))
        if len(kinds) <= 1 or kinds <= _APART:  # no two values of different types compare equal
            keys = values
            distinct = dict.fromkeys(values)
            failed = set()
            for value in distinct:
                try:
                    distinct[value] = check(value)
                except InvalidRequestError:
                    failed.add(value)
            if failed:
                return [], next(i for i, value in enumerate(values) if value in failed)
            return [distinct[value] for value in values], None
        keys = list(zip(map(type, values), values))
        distinct = dict.fromkeys(keys)
    except TypeError:  # an unhashable value: check row by row
        checked = []
        for i, value in enumerate(values):
            try:
                checked.append(check(value))
            except InvalidRequestError:
                return [], i
        return checked, None
    failed = set()
    for key in distinct:
        try:
            distinct[key] = check(key[1])
        except InvalidRequestError:
            failed.add(key)
    if failed:
        return [], next(i for i, key in enumerate(keys) if key in failed)
    return [distinct[key] for key in keys], None


def _required_types(value: Any) -> ServiceType:
    types = parse_service_types(value, "JobRequest.required_types", InvalidRequestError)
    if not types:
        raise InvalidRequestError("JobRequest.required_types must name at least one service type")
    return types


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
        # validate by JobRequest's own rules, column by column, each distinct value
        # once (languages, types, tenants, sessions repeat); the first bad row is
        # then rebuilt as a JobRequest, which raises exactly its own error
        err = InvalidRequestError
        checks = {
            "src_lang": lambda v: normalize_lang(v, "JobRequest.src_lang", err, allow_auto=True),
            "tgt_lang": lambda v: normalize_lang(v, "JobRequest.tgt_lang", err),
            "required_types": _required_types,
            "session_id": lambda v: check_optional_id(v, "JobRequest.session_id", err),
            "tenant_id": lambda v: check_optional_id(v, "JobRequest.tenant_id", err),
            "routing_key": lambda v: v if v is None else check_text(
                v, "JobRequest.routing_key", err, max_length=MAX_ROUTING_KEY_LENGTH),
            "public": lambda v: check_bool(v, "JobRequest.public", err),
            "preferred_node_id": lambda v: check_optional_id(v, "JobRequest.preferred_node_id", err),
        }
        out: dict[str, list[Any]] = {}
        bad_rows = []
        for name, check in checks.items():
            out[name], bad = _checked_column(cols[name], check)
            if bad is not None:
                bad_rows.append(bad)
        excl_out: list[frozenset[str]] = [_NO_EXCLUSIONS] * n
        for i, row_excl in enumerate(excl):
            if row_excl is not None and not (type(row_excl) is frozenset and not row_excl):
                try:
                    excl_out[i] = _checked_excluded(row_excl)
                except InvalidRequestError:
                    bad_rows.append(i)
                    break
        if bad_rows:
            i = min(bad_rows)
            try:
                JobRequest(*(cols[name][i] for name in _FIELDS[:6]), excl[i] or _NO_EXCLUSIONS,
                           cols["public"][i], cols["preferred_node_id"][i])
            except InvalidRequestError as exc:
                raise type(exc)(f"JobColumns row {i}: {exc}") from None
            raise AssertionError(f"JobColumns row {i} failed a check JobRequest accepts")  # pragma: no cover
        types_out = out["required_types"]
        # the routing key of docs/DESIGN.md §5: routing_key, else session_id, else ""
        keys = [r if r is not None else (s or "") for r, s in zip(out["routing_key"], out["session_id"])]
        src_out, tgt_out, public_out = out["src_lang"], out["tgt_lang"], out["public"]
        session_out, tenant_out = out["session_id"], out["tenant_id"]
        routing_out, preferred_out = out["routing_key"], out["preferred_node_id"]
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
