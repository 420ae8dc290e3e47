"""The scheduler's extender JSON (kube-scheduler's extender API v1): ExtenderArgs
in, ExtenderFilterResult / HostPriorityList out. Go field names, this casing;
incoming keys are matched case-insensitively like Go's decoder does.

Every way a body can be wrong raises ``BadRequestError`` with the path of the
offending field: the app answers HTTP 400, never 500, for bad input.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from dataclasses import dataclass
from typing import Any, TypedDict

from .facts import NodeFacts, node_facts
from .pod import PodError, PodFacts, pod_facts


class BadRequestError(ValueError):
    """The request is not a valid ExtenderArgs (HTTP 400)."""


class NodeList(TypedDict):
    metadata: dict[str, Any]
    items: list[Any]  # Node dicts, or raw JSON bytes (msgspec.Raw) echoed verbatim


class ExtenderFilterResult(TypedDict):
    Nodes: NodeList | None
    NodeNames: list[str] | None
    FailedNodes: dict[str, str]
    FailedAndUnresolvableNodes: dict[str, str]
    Error: str


class HostPriority(TypedDict):
    Host: str
    Score: int


@dataclass(slots=True)
class ExtenderArgs:
    pod: PodFacts
    names: list[str]  # candidates, in the scheduler's order
    node_items: dict[str, Any] | None  # Nodes mode: name → the Node as sent, else None
    nodes: dict[str, NodeFacts] | None  # Nodes mode: facts of those objects

    @property
    def cache_mode(self) -> bool:
        return self.node_items is None


class Codec:
    """How bodies are decoded and replies encoded: ``msgspec`` (fast, reads
    only the needed fields, echoes Node bytes) or ``stdlib`` (json)."""

    def __init__(self, name: str = "auto") -> None:
        if name == "auto":
            name = "msgspec" if importlib.util.find_spec("msgspec") else "stdlib"
        if name not in ("msgspec", "stdlib"):
            raise ValueError(f"unknown JSON codec {name!r} (auto, msgspec or stdlib)")
        self.name = name
        self._fast: Any = None
        if name == "msgspec":
            try:
                self._fast = importlib.import_module(".wire_fast", __package__)
            except ImportError as exc:
                raise ValueError(
                    f"JSON codec msgspec unavailable ({exc}): pip install 'msgspec>=0.18,<1' "
                    "(hack/setup.sh, step: python venv), or --json-codec stdlib"
                ) from exc

    def parse(self, body: bytes | bytearray) -> ExtenderArgs:
        if self._fast is None:
            return parse_args_stdlib(body)
        try:
            pod, names, items, nodes = self._fast.decode_args(body)
        except self._fast.NeedsStdlib:
            return parse_args_stdlib(body)
        except ValueError as exc:
            raise BadRequestError(str(exc)) from None
        return ExtenderArgs(_pod(pod), names, items, nodes)

    def encode(self, payload: object) -> bytes:
        if self._fast is None:
            return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        return self._fast.encode(payload)  # type: ignore[no-any-return]

    def encode_priorities(self, scores: list[tuple[str, int]]) -> bytes:
        """Prioritize's reply (a HostPriorityList) from (host, score) pairs."""
        if self._fast is None:
            return self.encode(priority_list(scores))
        return self._fast.encode_priorities(scores)  # type: ignore[no-any-return]


def _pod(pod: object) -> PodFacts:
    try:
        return pod_facts(pod)
    except PodError as exc:
        raise BadRequestError(f"ExtenderArgs.{exc}") from None


def parse_args_stdlib(body: bytes | bytearray) -> ExtenderArgs:
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequestError(f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequestError("request body is not valid JSON: nested too deeply") from None
    if not isinstance(doc, dict):
        raise BadRequestError("ExtenderArgs: expected a JSON object")
    fields = _fold(doc)
    pod = fields.get("pod")
    if pod is None:
        raise BadRequestError("ExtenderArgs.Pod: missing")
    facts = _pod(pod)
    raw_names = fields.get("nodenames")
    raw_nodes = fields.get("nodes")
    if raw_nodes is not None:
        items, nodes = _nodes(raw_nodes)
        return ExtenderArgs(facts, list(nodes), items, nodes)
    if raw_names is None:
        return ExtenderArgs(facts, [], None, None)
    if not isinstance(raw_names, list) or not all(isinstance(n, str) for n in raw_names):
        raise BadRequestError("ExtenderArgs.NodeNames: expected an array of strings")
    return ExtenderArgs(facts, raw_names, None, None)


def _nodes(raw: object) -> tuple[dict[str, Any], dict[str, NodeFacts]]:
    if not isinstance(raw, dict):
        raise BadRequestError("ExtenderArgs.Nodes: expected a NodeList object")
    items = raw.get("items")
    if items is None:
        return {}, {}
    if not isinstance(items, list):
        raise BadRequestError("ExtenderArgs.Nodes.items: expected an array")
    nodes: dict[str, NodeFacts] = {}
    by_name: dict[str, Any] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise BadRequestError(f"ExtenderArgs.Nodes.items[{i}]: expected a Node object")
        meta = item.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        if not isinstance(name, str) or not name:
            raise BadRequestError(f"ExtenderArgs.Nodes.items[{i}].metadata.name: missing")
        nodes[name] = node_facts(item)
        by_name[name] = item
    return by_name, nodes


def _fold(doc: dict[str, Any]) -> dict[str, Any]:
    """Keys lower-cased; an exact-case key wins over a differently cased one."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        lower = key.lower()
        if lower not in out or key in ("Pod", "Nodes", "NodeNames"):
            out[lower] = value
    return out


def filter_result(
    args: ExtenderArgs,
    passed: list[str],
    failed: dict[str, str],
    unresolvable: dict[str, str],
) -> ExtenderFilterResult:
    """Always a list: in Nodes mode both ``Nodes.items`` and ``NodeNames``."""
    nodes: NodeList | None = None
    if args.node_items is not None:
        items = args.node_items
        nodes = {"metadata": {}, "items": [items[name] for name in passed]}
    return {
        "Nodes": nodes,
        "NodeNames": passed,
        "FailedNodes": failed,
        "FailedAndUnresolvableNodes": unresolvable,
        "Error": "",
    }


def error_result(message: str) -> ExtenderFilterResult:
    return {
        "Nodes": None,
        "NodeNames": [],
        "FailedNodes": {},
        "FailedAndUnresolvableNodes": {},
        "Error": message,
    }


def priority_list(scores: list[tuple[str, int]]) -> list[HostPriority]:
    return [{"Host": host, "Score": score} for host, score in scores]
