"""ipamd refuses a placeholder or malformed cluster id (issue 11, item 9): the
id is how ipamd finds its own ENIs, and two clusters sharing one (deploy/'s
placeholder) delete each other's ENIs."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ipamd import cli
from ipamd.config import ConfigError, Settings, load

KNOB = "deploy/knobs/ipamd-args.yaml"


@pytest.mark.parametrize(
    "value",
    [
        "cls-xxxxxxxx",
        "cls-XXXXXXXX",
        "cls-00000000",
        "cls-a",
        "cls-",
        "kjqul1ir",
        "cls-kjqul1ir x",
        "CLS-KJQUL1IR",
        "cls-kjqu_1ir",
        "cls-kjqul1ir9",
    ],
)
def test_placeholder_or_malformed_cluster_id_refused(value: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(["--clusterid", value], {})
    text = str(err.value)
    assert "--clusterid" in text and KNOB in text and repr(value.strip()) in text


def test_env_cluster_id_checked_too() -> None:
    with pytest.raises(ConfigError, match="--clusterid"):
        load([], {"TKE_IPAMD_CLUSTERID": "cls-xxxxxxxx"})


def test_real_cluster_ids_accepted() -> None:
    for value in ("cls-kjqul1ir", "cls-test0001", "cls-0a1b2c3d"):
        assert load(["--clusterid", value], {}).cluster_id == value


def test_cli_exits_2_naming_flag_and_knob(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--clusterid", "cls-xxxxxxxx"]) == 2
    err = capsys.readouterr().err
    assert "--clusterid" in err and KNOB in err and "placeholder" in err


def test_leak_flags() -> None:
    assert Settings().leaked_eni_min_age == timedelta(minutes=10)
    assert Settings().leaked_eni_min_age > Settings().reconcile_interval * 5
    assert Settings().leaked_eni_dry_run is False
    s = load(
        ["--clusterid", "cls-kjqul1ir", "--leaked-eni-min-age", "30m", "--leaked-eni-dry-run"], {}
    )
    assert s.leaked_eni_min_age == timedelta(minutes=30) and s.leaked_eni_dry_run is True
    with pytest.raises(ConfigError, match="--leaked-eni-min-age"):
        load(["--clusterid", "cls-kjqul1ir", "--leaked-eni-min-age", "soon"], {})
