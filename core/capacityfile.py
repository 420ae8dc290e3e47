"""Pure: the device plugin's capacity file, the one definition both sides use.
The node agent writes it (``cni/agent/capacity_file.py``), the device plugin
reads it (``device_plugin/capfile.py``, ``--capacity-file``); an operator may
write it too.

The text: ``key = value`` lines, ``#`` starts a comment, blank lines ignored.
Keys: ``max_pods`` (0 = no cap), ``unavailable_enis``, ``usable_ips``; each an
integer >= 0. A key absent from the file means "not said here" (the plugin
falls back to its flag/env value; ``usable_ips``: no limit). Writers replace
the file atomically (temp file in the same directory, then rename)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

KEY_MAX_PODS: Final = "max_pods"
KEY_UNAVAILABLE_ENIS: Final = "unavailable_enis"
KEY_USABLE_IPS: Final = "usable_ips"
KEYS: Final = (KEY_MAX_PODS, KEY_UNAVAILABLE_ENIS, KEY_USABLE_IPS)


class CapacityFileError(ValueError):
    """The file has a line we cannot use; the message names file and line."""


@dataclass(frozen=True, slots=True)
class CapacityOverrides:
    max_pods: int | None = None
    unavailable_enis: int | None = None
    usable_ips: int | None = None


def parse_capacity_file(text: str, path: str = "<capacity file>") -> CapacityOverrides:
    values: dict[str, int] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key, eq, value = (p.strip() for p in line.partition("="))
        if not eq or key not in KEYS:
            raise CapacityFileError(
                f"{path}:{lineno}: expected one of {', '.join(KEYS)} = <integer>, got {raw!r}"
            )
        try:
            number = int(value)
        except ValueError:
            number = -1
        if number < 0:
            raise CapacityFileError(
                f"{path}:{lineno}: {key} must be an integer >= 0, got {value!r}"
            )
        values[key] = number
    return CapacityOverrides(**values)


def render_capacity_file(values: CapacityOverrides, comments: Sequence[str] = ()) -> str:
    """The file's text: ``comments`` as ``#`` lines, then the keys that are set."""
    lines = [f"# {c}" for c in comments]
    for key in KEYS:
        value = getattr(values, key)
        if value is not None:
            if value < 0:
                raise ValueError(f"capacity file: {key} must be >= 0, got {value}")
            lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"
