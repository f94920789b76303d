"""The bounds on what a node, a job or a config file may hand the registry.

Every value a node sends (its registration, its heartbeats) and every file an
operator loads is bounded here, in one place, so that no input can cost more
than linear time and memory in its size, and the largest allowed input stays
cheap. A value past a bound raises :class:`~pyscheduler.LimitExceededError`
(node and job input) or :class:`~pyscheduler.ConfigError` (config and fleet
files), names the field, the bound and the size found, and changes nothing.
``docs/SECURITY.md`` lists them with what each costs.
"""

from __future__ import annotations

__all__ = [
    "MAX_COUNT",
    "MAX_ID_LENGTH",
    "MAX_LANG_LENGTH",
    "MAX_LANGUAGES_PER_CAPABILITY",
    "MAX_NMT_PAIRS",
    "MAX_NODE_LANGUAGES",
    "MAX_POOL_LANGUAGES",
    "MAX_POOL_NAME_LENGTH",
    "MAX_SERVICES",
    "MAX_LABELS",
    "MAX_LABEL_VALUE_LENGTH",
    "MAX_INFO_CHARS",
    "MAX_ROUTING_KEY_LENGTH",
    "MAX_EXCLUDED_NODES",
    "MAX_CONFIG_BYTES",
    "MAX_CONFIG_DEPTH",
    "MAX_CONFIG_INTEGER",
]

# -- identifiers and counts ----------------------------------------------------------

MAX_ID_LENGTH = 256
"""Characters in a node, service, session, tenant or label-key identifier."""

MAX_COUNT = 1_000_000
"""Largest job count (``max_concurrent_jobs``, ``current_jobs``) or sample size."""

# -- what one node may advertise -------------------------------------------------------

MAX_LANG_LENGTH = 35
"""Characters in a language code (the longest well-formed BCP 47 tag is shorter)."""

MAX_LANGUAGES_PER_CAPABILITY = 256
"""Codes in each of a node's ``asr``, ``tts``, ``semantic`` and ``nmt_languages`` lists."""

MAX_NMT_PAIRS = 4096
"""Entries in a node's ``nmt_pairs``."""

MAX_NODE_LANGUAGES = 512
"""Distinct codes one node mentions in all its capabilities together. It also
bounds a generated pool's language set, and with it the pairs the index holds
for that pool (at most ``MAX_NODE_LANGUAGES ** 2``)."""

MAX_POOL_LANGUAGES = MAX_NODE_LANGUAGES
"""Codes in one pool's ``languages`` (configured or generated)."""

MAX_POOL_NAME_LENGTH = MAX_POOL_LANGUAGES * (MAX_LANG_LENGTH + 1)
"""Characters in a pool name: a generated pool is named by its languages joined with ``-``."""

MAX_SERVICES = 64
"""Installed services on one node."""

MAX_LABELS = 64
"""Labels on one node."""

MAX_LABEL_VALUE_LENGTH = 1024
"""Characters in one label value."""

MAX_INFO_CHARS = 131_072
"""Characters of text in one node description: ids, codes, labels, all counted."""

# -- jobs ------------------------------------------------------------------------------

MAX_ROUTING_KEY_LENGTH = 1024
"""Characters in a job's ``routing_key``."""

MAX_EXCLUDED_NODES = 10_000
"""Node ids in a job's ``exclude_node_ids``."""

# -- config and fleet files --------------------------------------------------------------

MAX_CONFIG_BYTES = 8 * 1024 * 1024
"""Bytes in one TOML config or fleet file (or TOML string)."""

MAX_CONFIG_DEPTH = 16
"""Nesting of tables and arrays in one TOML document."""

MAX_CONFIG_INTEGER = 2**63 - 1
"""Largest magnitude of a TOML integer (TOML integers are signed 64-bit)."""
