"""Settings of every daemon from one declaration: each setting is a ``Flag``
(its ``--flag``, its env var, default, parser, check and help), a ``Spec`` is a
daemon's table of them. ``Spec.load`` applies the one rule: the flag, else the
env var (an empty one counts as unset), else the default. A value that cannot
be used raises ``SettingsError`` naming where it came from, the flag and the env
var; nothing is changed by loading. ``effective`` / ``log_effective`` give the
configuration for the start-up log with secrets redacted.

Flags take ``--flag value`` and ``--flag=value``; a boolean also takes
``--flag`` alone (true) and ``--no-flag`` (false)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from core.duration import DurationError, format_duration, parse_duration

REDACTED = "<redacted>"
#: keys redacted in the effective configuration whatever the declaration says:
#: the last word(s) of the name say it is a secret (``secret_key``, ``token``,
#: ``password``); a ``secret_name`` or ``token_file`` is a name or a path
SECRET_KEY = re.compile(
    r"(?i)(^|_)(secret|secret_key|token|password|passwd|passphrase|private_key|api_key)$"
)
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")

Parse = Callable[[str], Any]
Check = Callable[[Any], "str | None"]


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names its source,
    its flag and its env var."""


# --- parsers: text -> value, ValueError(why) when the text is not one -----------------


def boolean(raw: str) -> bool:
    low = raw.strip().lower()
    if low in TRUE:
        return True
    if low in FALSE:
        return False
    raise ValueError("expected true or false")


def integer(raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError("expected an integer") from None


def number(raw: str) -> float:
    try:
        return float(raw.strip())
    except ValueError:
        raise ValueError("expected a number") from None


def text(raw: str) -> str:
    return raw


def one_of(*choices: str) -> Parse:
    def parse(raw: str) -> str:
        value = raw.strip()
        if value not in choices:
            raise ValueError(f"not one of {', '.join(choices)}")
        return value

    return parse


def duration(raw: str) -> timedelta:
    """A Go duration (``10m0s``, ``1h30m``, ``30s``)."""
    try:
        return parse_duration(raw, what="duration")
    except DurationError as exc:  # "invalid duration 'x': why" -> "why"
        raise ValueError(str(exc).partition(f"{raw.strip()!r}: ")[2] or str(exc)) from None


def duration_or_never(raw: str) -> timedelta | None:
    """A Go duration, or ``never`` (or empty): None."""
    if raw.strip().lower() in ("", "never"):
        return None
    return duration(raw)


# --- checks: value -> problem or None ----------------------------------------------------


def at_least(minimum: float) -> Check:
    def check(value: Any) -> str | None:
        return None if value >= minimum else f"must be >= {minimum}"

    return check


def positive(value: Any) -> str | None:
    return None if value > 0 else "must be positive"


def above(minimum: float) -> Check:
    def check(value: Any) -> str | None:
        return None if value > minimum else f"must be > {minimum}"

    return check


def _default_parse(default: Any) -> Parse:
    if isinstance(default, bool):
        return boolean
    if isinstance(default, int):
        return integer
    if isinstance(default, float):
        return number
    if isinstance(default, timedelta):
        return duration
    if isinstance(default, str):
        return text
    raise TypeError(f"no parser for a default of type {type(default).__name__}: give parse=")


@dataclass(frozen=True)
class Flag:
    """One setting: ``field`` is its name in the settings object; ``flag`` defaults to
    ``--`` + the field with dashes; ``also_env`` are older env names read after ``env``;
    ``parse`` defaults from the default's type; ``secret`` redacts it in the log."""

    field: str
    env: str
    default: Any
    help: str
    flag: str = ""
    parse: Parse | None = None
    check: Check | None = None
    also_env: tuple[str, ...] = ()
    secret: bool = False
    metavar: str = ""

    def __post_init__(self) -> None:
        if not self.flag:
            object.__setattr__(self, "flag", "--" + self.field.replace("_", "-"))
        if self.parse is None:
            object.__setattr__(self, "parse", _default_parse(self.default))

    @property
    def is_bool(self) -> bool:
        return self.parse is boolean

    @property
    def envs(self) -> tuple[str, ...]:
        return (self.env, *self.also_env)

    def where(self) -> str:
        return f"flag {self.flag}, env {' or '.join(self.envs)}"

    def convert(self, raw: str, source: str) -> Any:
        """The value of ``raw`` (from ``source``), or SettingsError."""
        assert self.parse is not None
        try:
            value = self.parse(raw)
        except ValueError as exc:
            raise SettingsError(
                f"{source}: invalid value {raw!r}: {exc} ({self.where()})"
            ) from None
        problem = self.check(value) if self.check is not None else None
        if problem:
            raise SettingsError(f"{source}: {problem}, got {raw!r} ({self.where()})")
        return value


@dataclass(frozen=True)
class Loaded:
    """What ``Spec.load`` found: the values by field, where each came from
    (the flag, the env var's name or ``default``), and argparse's namespace
    (for arguments a caller added to the parser itself)."""

    values: dict[str, Any]
    sources: dict[str, str]
    namespace: argparse.Namespace


@dataclass(frozen=True)
class Spec:
    """A daemon's settings table: its program name, description and flags."""

    prog: str
    description: str
    flags: tuple[Flag, ...]

    def __post_init__(self) -> None:
        for what in ("field", "flag", "env"):
            names = [getattr(f, what) for f in self.flags]
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"{self.prog}: settings declared twice ({what}): {dup}")

    def flag(self, field: str) -> Flag:
        for f in self.flags:
            if f.field == field:
                return f
        raise KeyError(field)

    @property
    def defaults(self) -> dict[str, Any]:
        return {f.field: f.default for f in self.flags}

    @property
    def secrets(self) -> frozenset[str]:
        return frozenset(f.field for f in self.flags if f.secret)

    def parser(self) -> argparse.ArgumentParser:
        """The argparse parser (``--help``): every flag as text, default None (unset)."""
        parser = argparse.ArgumentParser(
            prog=self.prog,
            description=self.description + " Every flag also reads the env var shown.",
        )
        self.add_arguments(parser)
        return parser

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add this table's flags to ``parser`` (one a component shares, e.g. the cloud
        client's ``--cloud-*`` on a daemon's parser); read them back with ``resolve``."""
        for f in self.flags:
            shown = "(secret)" if f.secret else repr(f.default)
            doc = f"{f.help} [env {' or '.join(f.envs)}; default {shown}]".replace("%", "%%")
            metavar = f.metavar or f.field.upper()
            if f.is_bool:
                parser.add_argument(f.flag, dest=f.field, default=None, nargs="?",
                                    const="true", metavar=metavar, help=doc)
                parser.add_argument("--no-" + f.flag[2:], dest=f.field, action="store_const",
                                    const="false", help=argparse.SUPPRESS)
            else:
                parser.add_argument(f.flag, dest=f.field, default=None, metavar=metavar,
                                    help=doc)

    def load(
        self,
        argv: Sequence[str] | None = None,
        environ: Mapping[str, str] | None = None,
        *,
        parser: argparse.ArgumentParser | None = None,
    ) -> Loaded:
        """Flag > env > default. Unknown flags exit 2 with usage (argparse); a bad
        value raises SettingsError."""
        parser = parser or self.parser()
        ns = parser.parse_args(list(argv) if argv is not None else None)
        return self.resolve(ns, environ)

    def resolve(
        self, ns: argparse.Namespace, environ: Mapping[str, str] | None = None
    ) -> Loaded:
        """Flag > env > default over a namespace already parsed (by a parser this
        table was added to with ``add_arguments``); a bad value raises SettingsError."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for f in self.flags:
            raw, source = getattr(ns, f.field), f.flag
            if raw is None:
                source = next((e for e in f.envs if env.get(e, "") != ""), "")
                raw = env[source] if source else None
            if raw is None:
                values[f.field], sources[f.field] = f.default, "default"
                continue
            values[f.field], sources[f.field] = f.convert(raw, source), source
        return Loaded(values, sources, ns)

    def load_or_exit(
        self,
        argv: Sequence[str] | None = None,
        environ: Mapping[str, str] | None = None,
        *,
        parser: argparse.ArgumentParser | None = None,
        check: Callable[[dict[str, Any]], None] | None = None,
    ) -> Loaded:
        """``load``, then ``check`` (which may raise SettingsError); any SettingsError
        exits 2 with the usage and the message, like argparse's own errors."""
        parser = parser or self.parser()
        try:
            loaded = self.load(argv, environ, parser=parser)
            if check is not None:
                check(loaded.values)
        except SettingsError as exc:
            parser.error(str(exc))
        return loaded


# --- the effective configuration -----------------------------------------------------------


def plain(value: Any) -> Any:
    """``value`` as JSON-friendly data: dataclasses and mappings as dicts, tuples
    and sets as lists, durations in Go syntax."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if isinstance(value, timedelta):
        return format_duration(value)
    return value


def redact(data: Any, secret: Iterable[str] = ()) -> Any:
    """``data`` with the values of secret keys (declared ``secret``, or named like one:
    ``SECRET_KEY``) replaced by ``<redacted>`` at any depth; empty values are kept
    (they say the secret is not set)."""
    names = frozenset(secret)
    if isinstance(data, dict):
        return {
            k: REDACTED if (k in names or SECRET_KEY.search(k)) and v not in (None, "")
            else redact(v, names)
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [redact(v, names) for v in data]
    return data


def effective(settings: Any, secret: Iterable[str] = ()) -> dict[str, Any]:
    """The effective configuration of ``settings`` (a dataclass or a mapping) for a
    log line, secrets redacted."""
    data = plain(settings)
    if not isinstance(data, dict):
        raise TypeError(f"effective(): a dataclass or a mapping, not {type(settings).__name__}")
    return dict(redact(data, secret))


def log_effective(
    logger: logging.Logger, prog: str, settings: Any, secret: Iterable[str] = ()
) -> None:
    """One INFO line ``starting <prog>`` with the field ``config``: the effective
    configuration, secrets redacted."""
    logger.info("starting %s", prog, extra={"config": effective(settings, secret)})
