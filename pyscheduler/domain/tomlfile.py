"""Reading TOML config and fleet files with bounded cost.

A config file is operator input, but it may come from anywhere (a shared
volume, a chart, a copy-paste), so reading one is bounded like node input:
at most :data:`~pyscheduler.domain.limits.MAX_CONFIG_BYTES` bytes, strict
UTF-8, tables and arrays nested at most
:data:`~pyscheduler.domain.limits.MAX_CONFIG_DEPTH` deep, integers within the
signed 64-bit range TOML defines. Every failure is one
:class:`~pyscheduler.ConfigError` naming the source — never a bare
``UnicodeDecodeError``, ``RecursionError`` or ``OverflowError``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .limits import MAX_CONFIG_BYTES, MAX_CONFIG_DEPTH, MAX_CONFIG_INTEGER

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["read_toml_file", "parse_toml"]


def read_toml_file(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """Read and parse the TOML file at ``path`` (``what`` names it in errors)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except ValueError as exc:  # e.g. a path with a NUL byte
        raise ConfigError(f"cannot read {what} {path!r}: {exc}") from None
    return parse_toml(data, str(path))


def parse_toml(data: bytes | str, source: str = "TOML") -> dict[str, Any]:
    """Parse TOML text (``bytes`` must be UTF-8) within the limits above."""
    if isinstance(data, bytes):
        if len(data) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{source}: larger than {MAX_CONFIG_BYTES} bytes")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{source}: not UTF-8 (byte {exc.start}: {exc.reason})") from None
    elif isinstance(data, str):
        text = data
        if len(text) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{source}: larger than {MAX_CONFIG_BYTES} characters")
    else:
        raise ConfigError(f"{source}: TOML must be str or bytes, got {type(data).__name__}")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: malformed TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested deeper than {MAX_CONFIG_DEPTH} levels") from None
    except ValueError as exc:  # an integer past the interpreter's digit limit, a lone surrogate
        raise ConfigError(f"{source}: malformed TOML: {exc}") from None
    _check_document(doc, source)
    return doc


def _check_document(doc: dict[str, Any], source: str) -> None:
    """Depth and integer range, walked without recursion."""
    stack: list[tuple[Any, str, int]] = [(doc, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        if isinstance(value, dict):
            children = [(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()]
        elif isinstance(value, list):
            children = [(v, f"{where}[{i}]") for i, v in enumerate(value)]
        else:
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_CONFIG_INTEGER:
                raise ConfigError(
                    f"{source}: {where or 'value'}: integer out of the 64-bit range TOML allows"
                )
            continue
        if depth >= MAX_CONFIG_DEPTH:
            raise ConfigError(f"{source}: {where or 'document'}: nested deeper than {MAX_CONFIG_DEPTH} levels")
        stack.extend((child, path, depth + 1) for child, path in children)
