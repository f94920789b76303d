"""Coverage-guided fuzz target: CoreServicesConfig.from_toml (TOML bytes).

Property (see ``_input_targets.py``): any input works or raises a
``pyscheduler.SchedulerError`` — nothing else — and a call that raised changed
nothing. Run it from the repository root (``pip install atheris``)::

    python3 tests/fuzz/fuzz_core_services_toml.py -max_total_time=20 tests/fuzz/corpus/core_services_toml

The checked-in seeds are only read: when every directory named is under
``tests/fuzz/corpus``, new inputs go to a temporary directory (printed at
start). A longer local run keeps its finds elsewhere:
``python3 tests/fuzz/fuzz_core_services_toml.py -max_total_time=600 /tmp/core_services_toml tests/fuzz/corpus/core_services_toml``.
Without atheris, ``tests/test_fuzz_corpus.py`` replays the corpus through the target.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE)]  # this checkout's package, then _input_targets


def main() -> None:
    import atheris

    with atheris.instrument_imports(include=["pyscheduler"]):
        import _input_targets
    atheris.Setup(_input_targets.fuzz_argv(sys.argv, "core_services_toml"), _input_targets.TARGETS["core_services_toml"])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
