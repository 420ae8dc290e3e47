"""ExtenderArgs decoding and reply encoding: both codecs agree, bad bodies
raise BadRequestError (never anything else), replies have the exact keys."""

from __future__ import annotations

import contextlib
import json
import random

import pytest

from core.names import RESOURCE_ENI_IP
from localcluster import objects as ex
from scheduler_extender import wire
from scheduler_extender.facts import node_facts
from scheduler_extender.pod import PodError, pod_facts

CODECS = ["msgspec", "stdlib"]
GZ3 = "ap-guangzhou-3"


def test_auto_codec_prefers_msgspec() -> None:
    assert wire.Codec("auto").name == "msgspec"
    with pytest.raises(ValueError, match="unknown JSON codec"):
        wire.Codec("orjson")


@pytest.mark.parametrize("codec", CODECS)
def test_node_names_mode(codec: str) -> None:
    args = wire.Codec(codec).parse(ex.filter_args(ex.pod(static=True), ["n1", "n2"]))
    assert args.cache_mode
    assert args.names == ["n1", "n2"]
    assert args.nodes is None
    assert args.pod.key == "default/web-0"
    assert args.pod.static
    assert args.pod.eni_ips == 1


@pytest.mark.parametrize("codec", CODECS)
def test_nodes_mode_reads_zone_and_allocatable(codec: str) -> None:
    nodes = [
        ex.node("n1", GZ3, 12, full=True),
        ex.node("n2", "gz-legacy", None, legacy_zone=True),
        ex.node("n1", GZ3, 13),  # a duplicate name: the last one wins
    ]
    args = wire.Codec(codec).parse(ex.filter_args(ex.pod(), nodes=nodes))
    assert not args.cache_mode
    assert args.names == ["n1", "n2"]
    assert args.nodes is not None
    assert (args.nodes["n1"].zone, args.nodes["n1"].eni_ip_allocatable) == (GZ3, 13)
    assert (args.nodes["n2"].zone, args.nodes["n2"].eni_ip_allocatable) == ("gz-legacy", None)


@pytest.mark.parametrize("codec", CODECS)
def test_node_quantities_in_every_form_and_a_bytearray_body(codec: str) -> None:
    """Each node's eni-ip read as node_facts reads one object, whatever form and
    however often a value repeats (the fast codec parses each string once per
    request); a body handed over as a bytearray (how the server passes a large
    body) reads and echoes as the same bytes would."""
    values: list[object] = ["30", "30", 30, "1k", "2Ki", " 7 ", "abc", "", None, "30",
                            "1k", 0, "0", "-3", "3m"]
    nodes = []
    for i, v in enumerate(values):
        node = ex.node(f"n{i}", GZ3, full=True)
        node["status"]["allocatable"][RESOURCE_ENI_IP] = v
        node["status"]["capacity"][RESOURCE_ENI_IP] = values[-1 - i]
        nodes.append(node)
    body = ex.filter_args(ex.pod(), nodes=nodes)
    c = wire.Codec(codec)
    for given in (body, bytearray(body)):
        args = c.parse(given)
        assert args.nodes == {n["metadata"]["name"]: node_facts(n) for n in nodes}
        reply = json.loads(c.encode(wire.filter_result(args, ["n5", "n0"], {}, {})))
        assert reply["Nodes"]["items"] == [nodes[5], nodes[0]]


@pytest.mark.parametrize("codec", CODECS)
def test_filter_reply_echoes_node_objects_exactly(codec: str) -> None:
    c = wire.Codec(codec)
    nodes = [ex.node(f"n{i}", GZ3, full=True) for i in range(5)]
    args = c.parse(ex.filter_args(ex.pod(), nodes=nodes))
    reply = json.loads(c.encode(wire.filter_result(args, ["n3", "n1"], {"n0": "x"}, {})))
    assert list(reply) == [
        "Nodes",
        "NodeNames",
        "FailedNodes",
        "FailedAndUnresolvableNodes",
        "Error",
    ]
    assert reply["Nodes"] == {"metadata": {}, "items": [nodes[3], nodes[1]]}
    assert reply["NodeNames"] == ["n3", "n1"]
    assert reply["FailedNodes"] == {"n0": "x"}
    assert reply["FailedAndUnresolvableNodes"] == {}
    assert reply["Error"] == ""


@pytest.mark.parametrize("codec", CODECS)
def test_priority_list_shape(codec: str) -> None:
    out = json.loads(wire.Codec(codec).encode(wire.priority_list([("a", 3), ("b", 10)])))
    assert out == [{"Host": "a", "Score": 3}, {"Host": "b", "Score": 10}]


@pytest.mark.parametrize("codec", CODECS)
def test_encode_priorities_is_the_priority_list(codec: str) -> None:
    scores = [("a", 3), ("b\u00e9\"", 10), ("c", 0)]
    out = wire.Codec(codec).encode_priorities(scores)
    assert json.loads(out) == json.loads(wire.Codec("stdlib").encode(wire.priority_list(scores)))
    assert json.loads(out)[1] == {"Host": 'b\u00e9"', "Score": 10}
    assert wire.Codec(codec).encode_priorities([]) == b"[]"


@pytest.mark.parametrize("codec", CODECS)
def test_lower_case_keys_accepted(codec: str) -> None:
    body = json.dumps({"pod": ex.pod(), "nodes": None, "nodenames": ["x"]}).encode()
    assert wire.Codec(codec).parse(body).names == ["x"]


@pytest.mark.parametrize("codec", CODECS)
def test_both_null_means_no_candidates(codec: str) -> None:
    body = json.dumps({"Pod": ex.pod(), "Nodes": None, "NodeNames": None}).encode()
    assert wire.Codec(codec).parse(body).names == []


def test_random_corruption_only_ever_raises_bad_request() -> None:
    """Both codecs, 600 deterministic corruptions of a valid body: each is
    parsed or refused with BadRequestError (so HTTP 400), never another error.
    (The codecs may differ on a corrupted body that is still valid JSON, e.g.
    where a key's case was broken.)"""
    rng = random.Random(7)
    base = ex.filter_args(ex.pod(static=True), nodes=[ex.node("n1", GZ3, full=True)])
    codecs = [wire.Codec(c) for c in CODECS]
    for _ in range(600):
        data = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            op = rng.random()
            at = rng.randrange(len(data))
            if op < 0.4:
                data[at] = rng.choice(b'{}[]":,0a\\ \x00\xff')
            elif op < 0.7:
                del data[at : at + rng.randint(1, 20)]
            else:
                data[at:at] = rng.choice([b"null", b"[", b"}", b'"x"', b"1e999", b"-"])
        for codec in codecs:
            with contextlib.suppress(wire.BadRequestError):
                codec.parse(bytes(data))


@pytest.mark.parametrize(
    ("pod", "needle"),
    [
        (
            {
                "metadata": {"name": "p"},
                "spec": {
                    "containers": [
                        {"resources": {"requests": {"tke.cloud.tencent.com/eni-ip": "0.5"}}}
                    ]
                },
            },
            "integer quantity",
        ),
        (
            {
                "metadata": {"name": "p"},
                "spec": {
                    "containers": [{"resources": {"limits": {"tke.cloud.tencent.com/eni-ip": -1}}}]
                },
            },
            "negative",
        ),
        ({"metadata": {"name": "p", "annotations": []}}, "annotations"),
        ({"metadata": {"name": 5}}, "metadata.name"),
        (
            {
                "metadata": {"name": "p"},
                "spec": {
                    "containers": [
                        {"resources": {"requests": {"tke.cloud.tencent.com/eni-ip": True}}}
                    ]
                },
            },
            "boolean",
        ),
    ],
)
def test_pod_errors_name_the_field(pod: dict[str, object], needle: str) -> None:
    with pytest.raises(PodError, match=needle):
        pod_facts(pod)


def test_effective_request_counts_init_containers_like_the_scheduler() -> None:
    pod = ex.pod(eni_ip=1)
    pod["spec"]["initContainers"] = [
        {"name": "init", "resources": {"limits": {"tke.cloud.tencent.com/eni-ip": "2"}}}
    ]
    assert pod_facts(pod).eni_ips == 2
    pod["spec"]["containers"].append(
        {"name": "b", "resources": {"requests": {"tke.cloud.tencent.com/eni-ip": 2}}}
    )
    assert pod_facts(pod).eni_ips == 3
    assert pod_facts({"metadata": {"name": "x"}}).eni_ips == 0
    assert pod_facts({"metadata": {"name": "x"}}).namespace == "default"
