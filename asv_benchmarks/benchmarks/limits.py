"""The cost of the largest node the limits allow (``pyscheduler/domain/limits.py``).

The node mentions ``MAX_NODE_LANGUAGES`` codes (``MAX_LANGUAGES_PER_CAPABILITY``
ASR, as many TTS, the ASR ones again as NMT languages), ``MAX_NMT_PAIRS``
pairs and ``MAX_LABELS`` labels of 1,000 characters, and arrives as the dict a
dispatcher decodes from the node's message. Measured on a fresh registry with
one ``en-zh`` pool: the codes are in no pool (``no_pools``), or
``auto_generate_language_pools`` turns them into one 512-language pool
(``generated``). The figures are in ``docs/SECURITY.md``.
"""

from __future__ import annotations

from pyscheduler import (
    AutoPoolConfig,
    JobRequest,
    MigrationFlags,
    NodeInfo,
    NodeRegistry,
    Phase3Config,
    PoolConfig,
    _compat,
)

try:
    from pyscheduler.domain import limits
except ImportError:  # pragma: no cover - asv runs over history; older commits had no limits
    limits = None

PATHS = ["fast", "legacy"]
CASES = ["no_pools", "generated"]


def largest_node_message(node_id: str = "largest") -> dict:
    """The largest node the limits allow, as a decoded registration message."""
    per = limits.MAX_LANGUAGES_PER_CAPABILITY
    asr = [f"a{i:03d}" for i in range(per)]
    tts = [f"t{i:03d}" for i in range(per)]
    pairs = [[a, t] for a in asr for t in tts][: limits.MAX_NMT_PAIRS]
    return {
        "node_id": node_id,
        "installed_services": [
            {"service_id": "asr", "type": "ASR"},
            {"service_id": "nmt", "type": "NMT"},
            {"service_id": "tts", "type": "TTS"},
        ],
        "language_capabilities": {"asr": asr, "tts": tts, "nmt_languages": asr, "nmt_pairs": pairs},
        "labels": {f"label-{i}": "v" * 1000 for i in range(limits.MAX_LABELS)},
    }


class LargestNode:
    """``NodeInfo.from_dict`` + ``register_node_with_policy`` of the largest node,
    and the first ``select_node`` after it (on the fast path: the snapshot publish)."""

    params = (PATHS, CASES)
    param_names = ["path", "case"]
    number = 1
    repeat = (5, 20, 10.0)

    def setup(self, path, case):
        if limits is None:
            raise NotImplementedError("no documented limits in this commit")
        if path == "fast" and not _compat.HAVE_HOTPATH:
            raise NotImplementedError("the compiled extension is not built")
        cfg = Phase3Config(
            pools=(PoolConfig(1, "en-zh", ("en", "zh")),),
            auto_generate_language_pools=case == "generated",
            auto_pool=AutoPoolConfig(require_semantic=False),
        )
        flags = MigrationFlags.all_on() if path == "fast" else MigrationFlags()
        self.registry = NodeRegistry(cfg, flags=flags, clock=lambda: 1_000.0)
        self.registry.select_node(JobRequest("en", "zh"))  # the empty registry's snapshot, outside the timing
        self.message = largest_node_message()
        self.job = JobRequest("a001", "t002")

    def time_parse_and_register(self, path, case):
        self.registry.register_node_with_policy(NodeInfo.from_dict(self.message))

    def time_register_and_first_select(self, path, case):
        self.registry.register_node_with_policy(NodeInfo.from_dict(self.message))
        self.registry.select_node(self.job)

    def track_snapshot_bytes(self, path, case):
        """Bytes held by the snapshot generation after the node registered."""
        self.registry.register_node_with_policy(NodeInfo.from_dict(self.message))
        return self.registry.snapshot().nbytes

    track_snapshot_bytes.unit = "bytes"
