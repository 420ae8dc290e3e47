"""kit.logs: JSON or text lines, every caller's field kept in both, the level
and quiet loggers applied, the --log-level / --log-format declarations."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from kit import logs
from kit.settings import SettingsError, Spec


@pytest.fixture
def root() -> Iterator[logging.Logger]:
    """The root logger, given back as it was."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    quiet = logging.getLogger("chatty.lib")
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)
    quiet.setLevel(logging.NOTSET)


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_json_keeps_extra_and_event_fields(root: logging.Logger) -> None:
    out = io.StringIO()
    logs.setup("info", "json", stream=out)
    log = logging.getLogger("tke.demo")
    log.info("plain %s", "args", extra={"node": "n1", "count": 3})
    logs.event(log, logging.WARNING, "evented", name="shadows LogRecord.name", ts="mine",
               config={"port": 1, "ids": ("a",)}, obj=object)
    log.debug("dropped below the level")
    first, second = (json.loads(line) for line in lines(out))
    assert first["msg"] == "plain args" and first["level"] == "info"
    assert first["logger"] == "tke.demo" and first["ts"].endswith("Z")
    assert (first["node"], first["count"]) == ("n1", 3)
    assert second["level"] == "warning" and second["logger"] == "tke.demo"
    assert second["name"] == "shadows LogRecord.name"
    assert second["ts_"] == "mine" and second["ts"] != "mine"  # a base key is never replaced
    assert second["config"] == {"port": 1, "ids": ["a"]}
    assert "object" in second["obj"]  # not JSON: written as its str()


def test_text_keeps_the_same_fields(root: logging.Logger) -> None:
    out = io.StringIO()
    logs.setup("debug", "text", stream=out)
    log = logging.getLogger("tke.demo")
    log.debug("plain", extra={"node": "n1", "count": 3})
    logs.event(log, logging.ERROR, "evented", config={"port": 1})
    first, second = lines(out)
    assert first.endswith(' debug tke.demo: plain node="n1" count=3'), first
    assert second.endswith(' error tke.demo: evented config={"port": 1}'), second


def test_exceptions_are_kept_in_both(root: logging.Logger) -> None:
    for fmt in logs.FORMATS:
        out = io.StringIO()
        logs.setup("info", fmt, stream=out)
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("x").exception("failed", extra={"step": "a"})
        text = out.getvalue()
        assert "RuntimeError: boom" in text and "step" in text
        if fmt == "json":
            assert "RuntimeError: boom" in json.loads(text)["exc"]


def test_quiet_loggers_and_bad_arguments(root: logging.Logger) -> None:
    out = io.StringIO()
    logs.setup("debug", "json", quiet=("chatty.lib",), stream=out)
    logging.getLogger("chatty.lib").info("every request")
    logging.getLogger("chatty.lib").warning("worth a line")
    assert [json.loads(line)["msg"] for line in lines(out)] == ["worth a line"]
    assert len(root.handlers) == 1
    with pytest.raises(ValueError, match="log format 'xml'"):
        logs.setup("info", "xml")
    with pytest.raises(ValueError, match="log level 'loud'"):
        logs.setup("loud", "json")


def test_flags_of_a_daemon() -> None:
    spec = Spec("tke-demo", "d", logs.flags("TKE_DEMO_"))
    assert spec.load([], {}).values == {"log_level": "info", "log_format": "json"}
    got = spec.load(["--log-level", "DEBUG"], {"TKE_DEMO_LOG_FORMAT": "text"}).values
    assert got == {"log_level": "debug", "log_format": "text"}
    with pytest.raises(SettingsError, match=r"--log-format: invalid value 'xml'.*_LOG_FORMAT"):
        spec.load(["--log-format", "xml"], {})
    with pytest.raises(SettingsError, match=r"TKE_DEMO_LOG_LEVEL: invalid value 'loud'"):
        spec.load([], {"TKE_DEMO_LOG_LEVEL": "loud"})
