"""ipamd's subnet controller (``SubnetController.sync``) on the model world
(tests/mut_world.py: the real App, the emulator, a second pod subnet): the
mutation run (docs/mutation.md) found its bookkeeping unguarded.

* an accepted change installs the decision, says ``ok``, clears the
  "subnet full" marks of the active subnets only, publishes the status,
  emits ``SubnetsApplied`` with what changed and queues every node; a
  re-sync with nothing changed queues no node;
* a refused ConfigMap never replaces the decision in force (the refusal is
  published beside it, a Warning says why); with no decision in force the
  decision stays unknown and the refusal alone is published;
* a missing ConfigMap keeps the decision in force (and says so) or, with
  none, says nothing is configured;
* a deprecated setting gets a Warning; the cloud not answering leaves a
  condition that says so."""

from __future__ import annotations

from typing import Any

import pytest

from cloud.errors import CloudError
from core import models as m
from core import names
from ipamd.state import NODE
from tests.model_world import POD_SUBNET
from tests.mut_world import POD2_SUBNET, IpamModel, events, set_subnet, wide_world

__all__ = ["wide_world"]  # the fixture

CM = f"{names.CONFIGMAP_NAMESPACE}/{names.CONFIGMAP_NAME}"


def _resync(w: IpamModel) -> Any:
    """What the App does on a ConfigMap event: re-read it, then sync."""
    ipamd = w._live_ipamd()
    app = ipamd.app
    ipamd.relist()
    app.state.configmap_data = app.configmaps.get(CM)
    while app.queue.get(timeout=0) is not None:  # start from an empty queue
        pass
    app.subnets.sync()
    return app


def _queued(app: Any) -> set[str]:
    keys = set()
    while (k := app.queue.get(timeout=0)) is not None:
        keys.add(k)
        app.queue.done(k)
    return keys


def _published(w: IpamModel) -> dict[str, str]:
    obj = w.store.get("configmaps", names.CONFIGMAP_NAMESPACE, m.SUBNET_STATUS_CONFIGMAP)
    assert obj is not None, "no status published"
    return {s.subnet_id: s.state for s in m.load_subnet_statuses(obj["data"][m.SUBNET_STATUS_KEY])}


def test_an_accepted_change_is_installed_announced_and_queued(wide_world: IpamModel) -> None:
    w = wide_world
    app = w._live_ipamd().app
    seen = len(events(w, "SubnetsApplied"))  # the first decision's, at start
    app.state.exhausted |= {POD_SUBNET, POD2_SUBNET}
    set_subnet(w, POD2_SUBNET)
    app = _resync(w)
    st = app.state
    assert app.subnets.condition == "ok"
    assert st.decision is not None and set(st.decision.active) == {POD2_SUBNET}
    assert set(st.decision.draining) == {POD_SUBNET}
    assert st.exhausted == {POD_SUBNET}  # the active subnet's mark cleared, only it
    assert _published(w) == {POD2_SUBNET: m.SUBNET_ACTIVE, POD_SUBNET: m.SUBNET_DRAINING}
    evs = events(w, "SubnetsApplied")[seen:]
    assert len(evs) == 1 and evs[0]["type"] == "Normal"
    assert evs[0]["involvedObject"]["kind"] == "ConfigMap"
    assert evs[0]["message"] == (
        f"subnets applied: active ['{POD2_SUBNET}'], draining ['{POD_SUBNET}']"
    )
    assert {NODE + n for n in ("n1", "n2", "n3")} <= _queued(app)
    app = _resync(w)  # nothing changed
    assert app.subnets.condition == "ok"
    assert not {k for k in _queued(app) if k.startswith(NODE)}


def test_first_decision_without_draining_names_only_the_active(wide_world: IpamModel) -> None:
    w = wide_world
    set_subnet(w, f"{POD_SUBNET}:{POD2_SUBNET}")
    _resync(w)
    evs = events(w, "SubnetsApplied")
    assert evs[-1]["message"] == f"subnets applied: active ['{POD_SUBNET}', '{POD2_SUBNET}']"


def test_a_refused_configmap_never_replaces_the_decision_in_force(wide_world: IpamModel) -> None:
    w = wide_world
    before = w._live_ipamd().app.state.decision
    assert before is not None
    set_subnet(w, "subnet-nothere1")
    app = _resync(w)
    st = app.state
    assert st.decision is before and set(st.decision.active) == {POD_SUBNET}
    assert st.decision.refusals, "the refusal is not recorded beside the decision"
    assert app.subnets.condition.startswith("refused: ") and "subnet-nothere1" in (
        app.subnets.condition
    )
    assert _published(w) == {POD_SUBNET: m.SUBNET_ACTIVE, "subnet-nothere1": m.SUBNET_INVALID}
    warned = events(w, "InvalidSubnet")
    assert warned and warned[0]["type"] == "Warning" and "subnet-nothere1" in warned[0]["message"]
    assert warned[0]["involvedObject"]["kind"] == "ConfigMap"
    assert not {k for k in _queued(app) if k.startswith(NODE)}


def test_a_refusal_with_no_decision_in_force_leaves_it_unknown(wide_world: IpamModel) -> None:
    w = wide_world
    app = w._live_ipamd().app
    app.state.decision = None  # a first start: nothing accepted yet
    set_subnet(w, "subnet-nothere1")
    app = _resync(w)
    assert app.state.decision is None
    assert app.subnets.condition.startswith("refused: ")
    assert _published(w) == {"subnet-nothere1": m.SUBNET_INVALID}


def test_an_unparsable_configmap_is_refused_with_its_reason(wide_world: IpamModel) -> None:
    w = wide_world
    before = w._live_ipamd().app.state.decision
    set_subnet(w, "not-a-subnet")
    app = _resync(w)
    assert app.state.decision is before
    assert app.subnets.condition.startswith("refused: ") and "not-a-subnet" in (
        app.subnets.condition
    )
    warned = events(w, "InvalidSubnetConfig")
    assert warned and warned[0]["type"] == "Warning" and "not-a-subnet" in warned[0]["message"]


def test_a_missing_configmap_keeps_the_decision_and_says_so(wide_world: IpamModel) -> None:
    w = wide_world
    w.store.remove("configmaps", names.CONFIGMAP_NAMESPACE, names.CONFIGMAP_NAME)
    app = _resync(w)
    st = app.state
    assert st.decision is not None and set(st.decision.active) == {POD_SUBNET}
    assert st.decision.refusals == []
    assert app.subnets.condition == (
        f"ConfigMap {CM} is missing: keeping the last accepted subnets ['{POD_SUBNET}']"
    )
    assert _published(w) == {POD_SUBNET: m.SUBNET_ACTIVE}
    st.decision = None
    app.subnets.sync()
    assert app.subnets.condition == (
        f"ConfigMap {CM} is missing: no subnet is configured, no ENI is created"
    )
    assert st.decision is None


def test_a_deprecated_setting_gets_a_warning(wide_world: IpamModel) -> None:
    w = wide_world
    cm = w.store.get("configmaps", names.CONFIGMAP_NAMESPACE, names.CONFIGMAP_NAME)
    assert cm is not None
    cm["data"][names.CM_ZONE_DEPRECATED] = "ap-guangzhou-3"
    w.store.put("configmaps", cm)
    _resync(w)
    warned = events(w, "DeprecatedSetting")
    assert len(warned) == 1 and warned[0]["type"] == "Warning"
    assert names.CM_ZONE_DEPRECATED in warned[0]["message"]
    assert warned[0]["involvedObject"]["kind"] == "ConfigMap"


def test_the_cloud_not_answering_leaves_a_condition(wide_world: IpamModel) -> None:
    w = wide_world
    set_subnet(w, POD2_SUBNET)
    w.emu.faults.update({"throttle_ratio": 1.0, "actions": ["DescribeSubnets"]})
    try:
        with pytest.raises(CloudError):
            _resync(w)
    finally:
        w.emu.faults.update({"throttle_ratio": 0.0, "actions": []})
    app = w._live_ipamd().app
    assert app.subnets.condition.startswith("cannot check the subnets with the cloud yet: ")
    assert set(app.state.decision.active) == {POD_SUBNET}  # type: ignore[union-attr]
