"""Logs of every daemon: one JSON object per line, or one line of text for a
person, on stderr. Every field a caller passes, through ``extra={...}`` or
``event(..., **fields)``, is kept in both formats.

``setup(level, fmt)`` installs the one handler; ``flags(prefix)`` declares the
``--log-level`` and ``--log-format`` settings (env ``<prefix>LOG_LEVEL`` and
``<prefix>LOG_FORMAT``) every daemon has."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable
from typing import IO, Any

from kit.settings import Flag, one_of

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("json", "text")
#: the record attribute ``event`` puts its fields under (any name is then a
#: valid field, even one of LogRecord's own such as ``name`` or ``msg``)
FIELDS = "kit_fields"
#: the keys every line has; a field of the same name is written as ``<key>_``
BASE_KEYS = ("ts", "level", "logger", "msg", "exc")

_STANDARD = frozenset(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {
    "message",
    "asctime",
    "taskName",
    FIELDS,
}


def event(logger: logging.Logger, level: int, message: str, **fields: Any) -> None:
    """Log ``message`` with ``fields`` (whatever their names)."""
    if logger.isEnabledFor(level):
        logger.log(level, message, extra={FIELDS: fields}, stacklevel=2)


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The caller's fields of a record: its ``extra`` keys, then ``event``'s."""
    out = {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}
    nested = getattr(record, FIELDS, None)
    if isinstance(nested, dict):
        out.update(nested)
    return out


def _timestamp(record: logging.LogRecord) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{stamp}.{int(record.msecs):03d}Z"


def _json(value: Any) -> str:
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):  # e.g. a dict with non-string keys mixed, a cycle
        return json.dumps(repr(value))


class JsonFormatter(logging.Formatter):
    """``{"ts": ..., "level": ..., "logger": ..., "msg": ..., <fields>, "exc": ...}``"""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in fields_of(record).items():
            out[f"{key}_" if key in BASE_KEYS else key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        try:
            return json.dumps(out, default=str)
        except (TypeError, ValueError):
            return json.dumps({k: v if isinstance(v, str) else repr(v) for k, v in out.items()})


class TextFormatter(logging.Formatter):
    """``<ts> <level> <logger>: <msg> key=<json value> ...`` (and the traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        head = f"{_timestamp(record)} {record.levelname.lower()} {record.name}: "
        line = head + record.getMessage()
        tail = " ".join(f"{k}={_json(v)}" for k, v in fields_of(record).items())
        if tail:
            line += " " + tail
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def formatter(fmt: str) -> logging.Formatter:
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r} is not one of {', '.join(FORMATS)}")
    return JsonFormatter() if fmt == "json" else TextFormatter()


def setup(
    level: str = "info",
    fmt: str = "json",
    *,
    quiet: Iterable[str] = (),
    stream: IO[str] | None = None,
) -> None:
    """One handler on the root logger (replacing any): ``fmt`` lines on stderr at
    ``level``; the loggers named in ``quiet`` (chatty libraries) from WARNING up."""
    if level.lower() not in LEVELS:
        raise ValueError(f"log level {level!r} is not one of {', '.join(LEVELS)}")
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in quiet:
        logging.getLogger(name).setLevel(max(root.level, logging.WARNING))


def flags(env_prefix: str, *, level: str = "info", fmt: str = "json") -> tuple[Flag, Flag]:
    """The ``--log-level`` and ``--log-format`` settings of a daemon."""
    return (
        Flag(
            "log_level",
            env_prefix + "LOG_LEVEL",
            level,
            "log level: " + ", ".join(LEVELS) + " (any case)",
            parse=_level,
        ),
        Flag(
            "log_format",
            env_prefix + "LOG_FORMAT",
            fmt,
            "json (one object per line) or text (for a person); extra fields kept in both",
            parse=one_of(*FORMATS),
        ),
    )


def _level(raw: str) -> str:
    low = raw.strip().lower()
    if low not in LEVELS:
        raise ValueError(f"expected one of {', '.join(LEVELS)}")
    return low
