"""Pure: the device plugin's capacity file, the one definition both sides use.
The node agent writes it (``cni/agent/capacity_file.py``), the device plugin
reads it (``device_plugin/capfile.py``, ``--capacity-file``); an operator may
write it too.

The text: ``key = value`` lines, ``#`` starts a comment, blank lines ignored.
Keys: ``max_pods`` (0 = no cap), ``unavailable_enis``, ``usable_ips`` (a cap
on the Healthy devices); each an integer >= 0. A key absent from the file
means "not said here" (the plugin falls back to its flag/env value;
``usable_ips``: no limit).

The node's IP tally (``core.usable.IpTally``), all or none of: ``in_use_ips``,
``warm_ips``, ``cooling_ips``, ``reserved_ips``, ``leaving_ips`` (integers >= 0)
and ``can_grow`` (0 or 1), and optionally ``attachable_ips`` (the room left on
the attached ENIs; absent: unknown). The node agent writes it; the plugin applies
``core.usable.healthy_devices`` to it with the instance's limit. Writers
replace the file atomically (temp file in the same directory, then rename)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from core.usable import IpTally

KEY_MAX_PODS: Final = "max_pods"
KEY_UNAVAILABLE_ENIS: Final = "unavailable_enis"
KEY_USABLE_IPS: Final = "usable_ips"
# the tally: file key -> IpTally field
TALLY_KEYS: Final = {
    "in_use_ips": "in_use",
    "warm_ips": "warm",
    "cooling_ips": "cooling",
    "reserved_ips": "reserved",
    "leaving_ips": "leaving",
    "can_grow": "can_grow",
}
KEY_ATTACHABLE_IPS: Final = "attachable_ips"  # optional part of the tally
KEYS: Final = (KEY_MAX_PODS, KEY_UNAVAILABLE_ENIS, KEY_USABLE_IPS, *TALLY_KEYS, KEY_ATTACHABLE_IPS)


class CapacityFileError(ValueError):
    """The file has a line we cannot use; the message names file and line."""


@dataclass(frozen=True, slots=True)
class CapacityOverrides:
    max_pods: int | None = None
    unavailable_enis: int | None = None
    usable_ips: int | None = None
    tally: IpTally | None = None


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
        if key == "can_grow" and number > 1:
            raise CapacityFileError(f"{path}:{lineno}: can_grow must be 0 or 1, got {value!r}")
        values[key] = number
    counts = {TALLY_KEYS[k]: values.pop(k) for k in list(values) if k in TALLY_KEYS}
    attachable = values.pop(KEY_ATTACHABLE_IPS, None)
    tally = None
    if attachable is not None and not counts:
        raise CapacityFileError(f"{path}: {KEY_ATTACHABLE_IPS} needs the IP tally")
    if counts:
        missing = [k for k, f in TALLY_KEYS.items() if f not in counts]
        if missing:
            raise CapacityFileError(
                f"{path}: the IP tally needs all of {', '.join(TALLY_KEYS)}; "
                f"missing {', '.join(missing)}"
            )
        counts["can_grow"] = bool(counts["can_grow"])
        tally = IpTally(**counts, attachable=attachable)  # type: ignore[arg-type]
    return CapacityOverrides(**values, tally=tally)


def render_capacity_file(values: CapacityOverrides, comments: Sequence[str] = ()) -> str:
    """The file's text: ``comments`` as ``#`` lines, then the keys that are set."""
    lines = [f"# {c}" for c in comments]
    for key in (KEY_MAX_PODS, KEY_UNAVAILABLE_ENIS, KEY_USABLE_IPS):
        value = getattr(values, key)
        if value is not None:
            if value < 0:
                raise ValueError(f"capacity file: {key} must be >= 0, got {value}")
            lines.append(f"{key} = {value}")
    if values.tally is not None:
        for key, name in TALLY_KEYS.items():
            lines.append(f"{key} = {int(getattr(values.tally, name))}")
        if values.tally.attachable is not None:
            lines.append(f"{KEY_ATTACHABLE_IPS} = {values.tally.attachable}")
    return "\n".join(lines) + "\n"
