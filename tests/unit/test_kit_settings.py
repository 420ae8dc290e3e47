"""kit.settings: one declaration per setting; flag > env > default; a bad value
names its source, the flag and the env var; the effective configuration has its
secrets redacted."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from kit import settings as ks
from kit.settings import Flag, SettingsError, Spec

SPEC = Spec(
    "tke-demo",
    "A daemon for the tests.",
    (
        Flag("port", "DEMO_PORT", 8080, "port", check=ks.at_least(1)),
        Flag("ratio", "DEMO_RATIO", 0.5, "a ratio", check=ks.positive),
        Flag("name", "DEMO_NAME", "x", "a name", also_env=("OLD_NAME",)),
        Flag("eni_only", "DEMO_ENI_ONLY", False, "a switch"),
        Flag("mode", "DEMO_MODE", "api", "a choice", parse=ks.one_of("api", "table")),
        Flag("expiry", "DEMO_EXPIRY", None, "a duration or never", parse=ks.duration_or_never),
        Flag("cooldown", "DEMO_COOLDOWN", timedelta(seconds=30), "a duration"),
        Flag("api_token", "DEMO_TOKEN", "", "a secret", secret=True),
        Flag("lease", "DEMO_LEASE", "l", "renamed flag", flag="--leader-elect-lease-name"),
    ),
)


def load(argv: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    return SPEC.load(argv, env or {}).values


def test_defaults_then_env_then_flag() -> None:
    assert load([]) == SPEC.defaults
    env = {"DEMO_PORT": "9000", "DEMO_NAME": "from-env", "DEMO_ENI_ONLY": "yes"}
    got = SPEC.load([], env)
    values = got.values
    assert (values["port"], values["name"], values["eni_only"]) == (9000, "from-env", True)
    assert got.sources["port"] == "DEMO_PORT" and got.sources["ratio"] == "default"
    got = SPEC.load(["--port", "9100", "--name=flag", "--no-eni-only"], env)
    assert (got.values["port"], got.values["name"], got.values["eni_only"]) == (9100, "flag", False)
    assert got.sources["port"] == "--port"


def test_an_empty_env_var_is_unset_and_older_names_are_read_after() -> None:
    assert load([], {"DEMO_PORT": ""})["port"] == 8080
    assert load([], {"OLD_NAME": "old"})["name"] == "old"
    assert load([], {"OLD_NAME": "old", "DEMO_NAME": "new"})["name"] == "new"
    assert load([], {"OLD_NAME": "old", "DEMO_NAME": ""})["name"] == "old"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [(["--eni-only"], True), (["--eni-only=false"], False), (["--eni-only", "on"], True),
     (["--eni-only", "0"], False), (["--no-eni-only"], False)],
)
def test_boolean_forms(argv: list[str], expected: bool) -> None:
    env = {"DEMO_ENI_ONLY": "false" if expected else "true"}  # the flag wins either way
    assert load(argv, env)["eni_only"] is expected


def test_typed_values() -> None:
    got = load(["--expiry", "10m0s", "--cooldown=1h30m", "--mode", "table", "--ratio", "2"])
    assert got["expiry"] == timedelta(minutes=10) and got["cooldown"] == timedelta(minutes=90)
    assert got["mode"] == "table" and got["ratio"] == 2.0
    assert load(["--expiry", "never"])["expiry"] is None
    assert load(["--leader-elect-lease-name", "mine"])["lease"] == "mine"


@pytest.mark.parametrize(
    ("argv", "env", "says"),
    [
        (["--port", "many"], {}, "--port: invalid value 'many': expected an integer "
         "(flag --port, env DEMO_PORT)"),
        ([], {"DEMO_PORT": "0"}, "DEMO_PORT: must be >= 1, got '0' (flag --port, env DEMO_PORT)"),
        (["--ratio", "0"], {}, "--ratio: must be positive, got '0'"),
        (["--ratio", "half"], {}, "--ratio: invalid value 'half': expected a number"),
        ([], {"DEMO_ENI_ONLY": "maybe"}, "DEMO_ENI_ONLY: invalid value 'maybe': expected true or "
         "false (flag --eni-only, env DEMO_ENI_ONLY)"),
        (["--mode", "magic"], {}, "--mode: invalid value 'magic': not one of api, table"),
        (["--expiry", "ten"], {}, "--expiry: invalid value 'ten'"),
        (["--cooldown=-1m"], {}, "--cooldown: invalid value '-1m': must not be negative"),
        ([], {"DEMO_NAME": "x", "OLD_NAME": "y", "DEMO_PORT": "-"},
         "(flag --port, env DEMO_PORT)"),
        (["--name", "n"], {"DEMO_PORT": "p"}, "DEMO_PORT: invalid value 'p'"),
    ],
)
def test_bad_values_name_the_source_the_flag_and_the_env(
    argv: list[str], env: dict[str, str], says: str
) -> None:
    with pytest.raises(SettingsError) as err:
        SPEC.load(argv, env)
    assert says in str(err.value)


def test_older_env_names_are_named_too() -> None:
    with pytest.raises(SettingsError, match=r"env DEMO_NAME or OLD_NAME"):
        Spec("p", "d", (Flag("name", "DEMO_NAME", "x", "h", also_env=("OLD_NAME",),
                             check=lambda v: "too short"),)).load([], {"OLD_NAME": "y"})


def test_load_or_exit_exits_2_with_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        SPEC.load_or_exit(["--port", "x"], {})
    assert exc.value.code == 2
    assert "--port: invalid value 'x'" in capsys.readouterr().err

    def check(values: dict[str, Any]) -> None:
        if values["mode"] == "table" and values["eni_only"]:
            raise SettingsError("--mode table and --eni-only together: choose one")

    with pytest.raises(SystemExit):
        SPEC.load_or_exit(["--mode", "table", "--eni-only"], {}, check=check)
    assert "choose one" in capsys.readouterr().err
    assert SPEC.load_or_exit(["--mode", "table"], {}, check=check).values["mode"] == "table"


def test_unknown_flags_exit_with_usage() -> None:
    with pytest.raises(SystemExit) as exc:
        SPEC.load(["--nope"], {})
    assert exc.value.code == 2


def test_help_lists_each_flag_with_its_env_and_default_and_hides_secrets() -> None:
    text = SPEC.parser().format_help()
    for f in SPEC.flags:
        assert f.flag in text and f.env in text
    assert "OLD_NAME" in text and "default 8080" in text and "(secret)" in text
    assert "--no-eni-only" not in text


def test_a_declaration_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="declared twice"):
        Spec("p", "d", (Flag("a", "A", 1, "h"), Flag("b", "A", 1, "h")))
    with pytest.raises(TypeError, match="give parse="):
        Flag("a", "A", None, "h")


@dataclass(frozen=True)
class Cloud:
    region: str = "ap-guangzhou"
    secret_id: str | None = "AKID"
    secret_key: str | None = "very-secret"
    token: str | None = None
    credentials_file: str = "/etc/creds"


@dataclass(frozen=True)
class Demo:
    port: int = 1
    cooldown: timedelta = timedelta(seconds=30)
    secret_name: str = "tke-eni-ip-webhook-tls"
    password: str = "hunter2"
    api_token: str = "t0k3n"
    ids: tuple[str, ...] = ("a", "b")
    cloud: Cloud = field(default_factory=Cloud)
    rates: dict[str, float] = field(default_factory=lambda: {"AssignPrivateIpAddresses": 2.0})


def test_effective_configuration_redacts_secrets_at_any_depth() -> None:
    out = ks.effective(Demo(), secret={"api_token"})
    assert out["password"] == out["api_token"] == ks.REDACTED
    assert out["cloud"]["secret_key"] == ks.REDACTED
    assert out["cloud"]["token"] is None  # unset: said so, nothing to hide
    assert out["cloud"]["secret_id"] == "AKID" and out["cloud"]["credentials_file"] == "/etc/creds"
    assert out["secret_name"] == "tke-eni-ip-webhook-tls"  # a name, not a secret
    assert out["cooldown"] == "30s" and out["ids"] == ["a", "b"]
    assert out["rates"] == {"AssignPrivateIpAddresses": 2.0}
    for secret in ("hunter2", "t0k3n", "very-secret"):
        assert secret not in str(out)
    with pytest.raises(TypeError):
        ks.effective(3)


def test_log_effective_writes_one_line_with_the_config(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    ks.log_effective(logging.getLogger("demo"), "tke-demo", Demo())
    (record,) = caplog.records
    assert record.getMessage() == "starting tke-demo"
    config = record.__dict__["config"]
    assert config["port"] == 1 and config["password"] == ks.REDACTED
