"""What cluster sync writes to Redis and how everything read back is checked.

Everything read from Redis is input like any other: it is decoded here and
validated by the model and config classes (``NodeInfo.from_dict``,
``Heartbeat``, ``Phase3Config.from_dict``). A field that is missing, not UTF-8,
not a number, or refused by those classes raises :class:`MalformedEntry`,
which the reader logs before it skips the entry; nothing read can crash it.

Node hash (``{prefix}:node:{id}``), one per node, expiring
``heartbeat_timeout_s`` after its owner last refreshed it:

=========  ===============================================================
``owner``  instance id of the dispatcher the node is connected to
``info``   ``NodeInfo.to_dict()`` as JSON, with the node's current services
           and languages
``status`` ``NodeStatus`` value as the owner sees it
``hb``     the last heartbeat's load figures (:func:`encode_load`), or empty
``hb_at``  wall-clock time of that heartbeat (seconds since the epoch)
``flags``  ``d`` draining, ``x`` disconnected
``g``      the generation of the last change written to the hash
=========  ===============================================================

Stream entry (``{prefix}:events``): one field ``e``, its parts joined by
:data:`SEP` (see :mod:`~pyscheduler.cluster.scripts`): generation, origin
instance, wall-clock time of the local change, kind, node id, and the parts
of that kind (:func:`decode_entry`).

Limits. Whatever another instance (or anyone who can write to Redis) stored
is decoded within fixed bounds, so one poisoned key costs a bounded, linear
amount of work and is skipped: JSON text at most :data:`MAX_INFO_BYTES`
(node info) or :data:`MAX_CONFIG_BYTES` (the config document) long and at most
:data:`MAX_JSON_DEPTH` arrays/objects deep (:func:`loads_bounded`); a short
field (owner, status, load, flags, generation, version) at most
:data:`MAX_FIELD_BYTES`; a config version is 1 to 15 decimal digits
(:func:`decode_version`), exactly what the compare-and-set script accepts.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from ..domain.config import Phase3Config
from ..domain.errors import SchedulerError
from ..domain.model import Heartbeat, NodeInfo, NodeStatus

__all__ = [
    "SEP",
    "EVENT_KINDS",
    "EVENT_KINDS_BYTES",
    "FLAG_DISCONNECTED",
    "FLAG_DRAINING",
    "MalformedEntry",
    "NodeState",
    "decode_config",
    "decode_flags",
    "decode_entry",
    "decode_info",
    "decode_load",
    "decode_node_hash",
    "decode_node_id",
    "decode_owner",
    "decode_put",
    "decode_status",
    "decode_version",
    "loads_bounded",
    "MAX_CONFIG_BYTES",
    "MAX_FIELD_BYTES",
    "MAX_INFO_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_VERSION_DIGITS",
    "encode_config",
    "encode_flags",
    "encode_info",
    "encode_load",
]

REG, PUT, HB, DRAIN, DISC, RM, CFG = "reg", "put", "hb", "drain", "disc", "rm", "cfg"
EVENT_KINDS = frozenset({REG, PUT, HB, DRAIN, DISC, RM, CFG})
EVENT_KINDS_BYTES = frozenset(k.encode() for k in EVENT_KINDS)
FLAG_DRAINING = "d"
FLAG_DISCONNECTED = "x"


MAX_JSON_DEPTH = 16
"""Deepest nesting of arrays and objects accepted in JSON read from Redis
(what cluster sync writes nests at most 4 deep)."""
MAX_INFO_BYTES = 1 << 20
"""Longest node info JSON read from Redis (1 MiB)."""
MAX_CONFIG_BYTES = 4 << 20
"""Longest config document read from Redis (4 MiB)."""
MAX_FIELD_BYTES = 256
"""Longest short field read from Redis: owner, status, load, flags, generation, version."""
MAX_VERSION_DIGITS = 15
"""A config version is 1 to 15 decimal digits without a leading zero: exact
both as a Python int and as a Lua number (a double), in the compare-and-set script."""


class MalformedEntry(ValueError):
    """Something read from Redis is not what cluster sync writes."""


# -- writing ------------------------------------------------------------------------------------


def encode_info(info: NodeInfo) -> str:
    return json.dumps(info.to_dict(), separators=(",", ":"), sort_keys=True)


def encode_load(hb: Heartbeat) -> str:
    """``cpu,memory,gpu,jobs`` (gpu empty when absent); floats by ``repr``, so exact."""
    gpu = "" if hb.gpu_usage is None else repr(hb.gpu_usage)
    return f"{hb.cpu_usage!r},{hb.memory_usage!r},{gpu},{hb.current_jobs}"


def encode_flags(draining: bool, disconnected: bool) -> str:
    return (FLAG_DRAINING if draining else "") + (FLAG_DISCONNECTED if disconnected else "")


def encode_config(cfg: Phase3Config) -> str:
    return json.dumps(cfg.to_dict(), separators=(",", ":"), sort_keys=True)


# -- reading ------------------------------------------------------------------------------------

_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_INNERMOST = re.compile(r"\[\]|\{\}")


def json_depth(text: str, limit: int) -> int:
    """How deeply ``text``'s arrays and objects nest, or ``limit + 1`` if deeper
    than ``limit`` or unbalanced. Linear: each of at most ``limit + 1`` passes
    removes the innermost ``[]``/``{}`` pairs of the brackets outside strings."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    depth = 0
    while brackets:
        if depth == limit:
            return limit + 1
        shorter = _INNERMOST.sub("", brackets)
        if len(shorter) == len(brackets):
            return limit + 1  # unbalanced or crossed: not JSON anyway
        brackets = shorter
        depth += 1
    return depth


def loads_bounded(value: Any, what: str, max_bytes: int) -> Any:
    """``json.loads`` of untrusted text, refused with :class:`MalformedEntry` when it
    is longer than ``max_bytes``, nests deeper than :data:`MAX_JSON_DEPTH`, or is
    not UTF-8 JSON. Never raises anything else."""
    if isinstance(value, (bytes, str)) and len(value) > max_bytes:
        raise MalformedEntry(f"{what} is {len(value)} bytes long (at most {max_bytes})")
    text = _text(value, what)
    if json_depth(text, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise MalformedEntry(f"{what} nests deeper than {MAX_JSON_DEPTH} or is unbalanced")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise MalformedEntry(f"{what} is not JSON: {exc}") from None


def _text(value: Any, what: str) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedEntry(f"{what} is not UTF-8: {value[:40]!r}") from None
    if isinstance(value, str):
        return value
    raise MalformedEntry(f"{what} missing or not text: {value!r}")


def _short(value: Any, what: str) -> str:
    """A short text field (at most :data:`MAX_FIELD_BYTES`)."""
    if isinstance(value, (bytes, str)) and len(value) > MAX_FIELD_BYTES:
        raise MalformedEntry(f"{what} is {len(value)} bytes long (at most {MAX_FIELD_BYTES})")
    return _text(value, what)


def _field(fields: dict, name: bytes, what: str) -> Any:
    try:
        return fields[name]
    except KeyError:
        raise MalformedEntry(f"{what}: no {name.decode()!r} field") from None
    except TypeError:
        raise MalformedEntry(f"{what} is not a field map: {fields!r:.80}") from None


def _generation(value: Any, what: str) -> int:
    if isinstance(value, (bytes, str)) and len(value) > MAX_FIELD_BYTES:
        raise MalformedEntry(f"{what}: generation is {len(value)} bytes long")
    try:
        gen = int(value)
    except (TypeError, ValueError):
        raise MalformedEntry(f"{what}: generation {value!r:.40} is not an integer") from None
    if gen < 1:
        raise MalformedEntry(f"{what}: generation {gen} is not positive")
    return gen


SEP = b"\x1f"
"""Separator of a stream entry's parts (the unit separator: never in an id or in JSON)."""

# index of each part in a stream entry, and the number of parts per kind
GEN, ORIGIN, TIME, KIND, NODE = range(5)
_PARTS = {
    b"reg": (6, 6),  # + info
    b"put": (9, 9),  # + info, status, load, flags
    b"hb": (7, 8),  # + status, load [, info]
    b"drain": (6, 6),  # + status
    b"disc": (6, 6),  # + status
    b"rm": (5, 5),
    b"cfg": (6, 6),  # + version
}


def decode_entry(fields: object) -> tuple[int, bytes, float, bytes, list[bytes]]:
    """``(generation, origin, time, kind, parts)`` of one stream entry, as XREAD
    returns it unparsed (``[b"e", value]``). The parts after the header are
    checked by the functions that use them."""
    if (
        type(fields) is not list
        or len(fields) != 2
        or fields[0] != b"e"
        or type(fields[1]) is not bytes
    ):
        raise MalformedEntry(f"not a change entry (one field 'e' expected): {fields!r:.80}")
    parts = fields[1].split(SEP)
    if len(parts) < 5:
        raise MalformedEntry(f"change entry with {len(parts)} parts: {fields[1]!r:.80}")
    kind = parts[KIND]
    sizes = _PARTS.get(kind)
    if sizes is None:
        raise MalformedEntry(f"unknown kind {kind!r:.40}")
    if not sizes[0] <= len(parts) <= sizes[1]:
        raise MalformedEntry(f"{kind.decode()} entry with {len(parts)} parts")
    try:
        gen = int(parts[GEN])
        at = float(parts[TIME])
    except ValueError:
        raise MalformedEntry(f"bad generation or time in {fields[1]!r:.80}") from None
    if gen < 1 or not math.isfinite(at) or not parts[ORIGIN]:
        raise MalformedEntry(f"bad generation, time or origin in {fields[1]!r:.80}")
    return gen, parts[ORIGIN], at, kind, parts


def decode_node_id(value: Any) -> str:
    node_id = _text(value, "node id")
    if not node_id or not node_id.isprintable() or len(node_id) > 256:
        raise MalformedEntry(f"bad node id {node_id!r:.60}")
    return node_id


def decode_owner(value: Any) -> str:
    """An instance id (a hash's owner, a stream entry's origin)."""
    owner = _short(value, "instance id")
    if not owner:
        raise MalformedEntry("empty instance id")
    return owner


def decode_info(value: Any, node_id: str) -> NodeInfo:
    """The :class:`NodeInfo` of ``node_id`` from its JSON (:func:`encode_info`)."""
    data = loads_bounded(value, f"node info of {node_id!r}", MAX_INFO_BYTES)
    if not isinstance(data, dict):
        raise MalformedEntry(f"node info of {node_id!r} is not an object")
    try:
        info = NodeInfo.from_dict(data)
    except (SchedulerError, TypeError, ValueError, RecursionError) as exc:
        raise MalformedEntry(f"node info of {node_id!r} refused: {exc}") from None
    if info.node_id != node_id:
        raise MalformedEntry(f"node info names {info.node_id!r}, expected {node_id!r}")
    return info


def decode_load(value: Any) -> Heartbeat:
    """A load-only heartbeat from :func:`encode_load`'s text."""
    if not isinstance(value, (bytes, str)) or len(value) > MAX_FIELD_BYTES:
        raise MalformedEntry(f"heartbeat {value!r:.60} is not a short text")
    parts = value.split(b",") if isinstance(value, bytes) else str(value).split(",")
    if len(parts) != 4:
        raise MalformedEntry(f"heartbeat {value!r:.60} does not have 4 fields")
    try:
        cpu = float(parts[0])
        memory = float(parts[1])
        gpu = float(parts[2]) if parts[2] else None
        jobs = int(parts[3])
        return Heartbeat(cpu, memory, gpu, jobs)
    except (ValueError, SchedulerError) as exc:
        raise MalformedEntry(f"heartbeat {value!r:.60} refused: {exc}") from None


def decode_status(value: Any) -> NodeStatus:
    try:
        return NodeStatus(_short(value, "status"))
    except ValueError:
        raise MalformedEntry(f"unknown status {value!r:.40}") from None


def decode_flags(value: Any) -> str:
    flags = _short(value, "flags") if value is not None else ""
    if any(c not in (FLAG_DRAINING, FLAG_DISCONNECTED) for c in flags):
        raise MalformedEntry(f"unknown flags {flags!r:.20}")
    return flags


_VERSION = re.compile(rf"[1-9][0-9]{{0,{MAX_VERSION_DIGITS - 1}}}")


def decode_version(value: Any) -> int:
    """A config version: 1 to :data:`MAX_VERSION_DIGITS` digits, no sign, no
    leading zero. Anything else (``1e400``, ``inf``, ``-5``, 20 digits, ``abc``)
    is refused, as the compare-and-set script refuses it (it reads it as "no
    version"), so Python and Lua always agree on the number."""
    text = _short(value, "config version")
    if _VERSION.fullmatch(text) is None:
        raise MalformedEntry(f"config version {text!r:.40} is not 1 to {MAX_VERSION_DIGITS} digits")
    return int(text)


def decode_config(value: Any) -> Phase3Config:
    """The :class:`Phase3Config` of a config document (:func:`encode_config`)."""
    data = loads_bounded(value, "config document", MAX_CONFIG_BYTES)
    if not isinstance(data, dict):
        raise MalformedEntry("config document is not an object")
    try:
        return Phase3Config.from_dict(data)
    except (SchedulerError, TypeError, ValueError, RecursionError) as exc:
        raise MalformedEntry(f"config document refused: {exc}") from None


@dataclass(frozen=True, slots=True)
class NodeState:
    """One node as a hash or a ``put`` entry describes it."""

    node_id: str
    owner: str
    info: NodeInfo
    status: NodeStatus
    heartbeat: Heartbeat | None
    flags: str
    generation: int

    @property
    def draining(self) -> bool:
        return FLAG_DRAINING in self.flags

    @property
    def disconnected(self) -> bool:
        return FLAG_DISCONNECTED in self.flags


def decode_node_hash(node_id: str, fields: dict) -> NodeState:
    what = f"node hash {node_id!r}"
    owner = decode_owner(_field(fields, b"owner", what))
    info = decode_info(_field(fields, b"info", what), node_id)
    status = decode_status(_field(fields, b"status", what))
    load = fields.get(b"hb")
    heartbeat = decode_load(load) if load else None
    flags = decode_flags(fields.get(b"flags"))
    gen = _generation(_field(fields, b"g", what), what)
    return NodeState(node_id, owner, info, status, heartbeat, flags, gen)


def decode_put(node_id: str, origin: str, gen: int, parts: list[bytes]) -> NodeState:
    """The node state a ``put`` stream entry carries."""
    info = decode_info(parts[5], node_id)
    status = decode_status(parts[6])
    heartbeat = decode_load(parts[7]) if parts[7] else None
    return NodeState(node_id, origin, info, status, heartbeat, decode_flags(parts[8]), gen)
