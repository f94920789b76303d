"""pyscheduler: the scheduling core of a real-time speech-translation dispatcher.

Start with :class:`NodeRegistry`; docs/GUIDE.md walks a dispatcher through it, and
docs/DESIGN.md and docs/ARCHITECTURE.md explain the rest.
"""

from .domain.columns import JobColumns
from .domain.config import AutoPoolConfig, CoreServicesConfig, Phase3Config, PoolConfig
from .domain.errors import (
    ConfigError,
    DuplicateNodeError,
    InvalidHeartbeatError,
    InvalidRequestError,
    LimitExceededError,
    SchedulerError,
    UnknownNodeError,
    UnknownPoolError,
)
from .domain.flags import MigrationFlags
from .domain.model import (
    Attempt,
    Breakdown,
    Heartbeat,
    InstalledService,
    JobRequest,
    LanguageCapabilities,
    NodeInfo,
    NodeStatus,
    NodeView,
    Reason,
    Selection,
    ServiceState,
    ServiceType,
)
from .registry.node_registry import NodeRegistry
from .selection.batch import SelectionBatch

__version__ = "0.1.0"

__all__ = [
    "Attempt",
    "AutoPoolConfig",
    "Breakdown",
    "ConfigError",
    "CoreServicesConfig",
    "DuplicateNodeError",
    "Heartbeat",
    "InstalledService",
    "InvalidHeartbeatError",
    "InvalidRequestError",
    "JobColumns",
    "JobRequest",
    "LanguageCapabilities",
    "LimitExceededError",
    "MigrationFlags",
    "NodeInfo",
    "NodeRegistry",
    "NodeStatus",
    "NodeView",
    "Phase3Config",
    "PoolConfig",
    "Reason",
    "SchedulerError",
    "Selection",
    "SelectionBatch",
    "ServiceState",
    "ServiceType",
    "UnknownNodeError",
    "UnknownPoolError",
    "__version__",
]
