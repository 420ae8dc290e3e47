"""tke-route-eni: the CNI executable the container runtime runs.

A raw forwarder. It checks the CNI environment and the size and encoding of
stdin, forwards the call to the local node agent (``tke-eni-agent``) over a
unix socket and prints the agent's answer. The agent parses the network
config, does all netlink work and writes the CNI result or error JSON.

Start-up cost is the floor of every ADD and DEL, so this module imports only
``posix``, ``_socket`` and ``_json``: C modules (``posix`` is loaded by every
interpreter start). Not even ``os``: it pulls in ``_collections_abc`` (~0.5 ms
under ``-S``); never the ``json`` package (``re``, ``enum``, ...: ~8 ms, as
much as the interpreter's start): the network config, read only when it names
``agentSocket`` (the installed conflist does) or to answer VERSION or an error,
is parsed by ``_json``'s C scanner, and answers are written with its string
encoder. It imports nothing from this project: the agent installs this file
alone, with a precompiled .pyc, into the CNI bin dir.

Wire protocol, version 1 (one request per connection):

* request: one JSON object, then the client shuts down its write side::

      {"v": 1, "env": {"CNI_COMMAND": "ADD", ...every CNI_* variable}, "stdin": "<netconf text>"}

* response: a header line, ``\\n``, then the bytes to print on stdout::

      {"v":1,"exit":0}
      {"cniVersion": "1.0.0", "interfaces": [...], ...}

When the agent cannot be reached: ADD and CHECK fail with code 11 (try again
later) naming the socket; DEL removes what it can find from prevResult (the
host veth, the pod's ip rules) and succeeds, so pod deletion never blocks;
STATUS fails with code 50; GC fails with code 11.
"""

import _socket
import posix
from _json import encode_basestring_ascii as _quote
from _json import make_scanner as _make_scanner

PROTOCOL_VERSION = 1
DEFAULT_SOCKET = "/run/tke-eni-agent/cni.sock"
SUPPORTED_VERSIONS = ("0.4.0", "1.0.0", "1.1.0")
MAX_STDIN = 1 << 20  # bytes; a larger network config is refused with code 6
AGENT_TIMEOUT = 120.0  # seconds; longer than the agent's own bound on a static-IP wait
COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC")
REQUIRED_ENV = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME"),
    "GC": ("CNI_PATH",),
    "STATUS": (),
    "VERSION": (),
}
_HEADER = b'{"v":1,"exit":'
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_BAD_IFNAME_CHARS = frozenset("/: \t\n\r\x0b\x0c")

# CNI error codes used here
ERR_ENV = 4
ERR_IO = 5
ERR_DECODE = 6
ERR_TRY_AGAIN = 11
ERR_NOT_AVAILABLE = 50


class CniError(Exception):
    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details


def environ() -> "dict[str, str]":
    """The environment as text (``posix.environ`` holds bytes)."""
    return {
        k.decode("utf-8", "surrogateescape"): v.decode("utf-8", "surrogateescape")
        for k, v in posix.environ.items()
    }


def check_env(env: "dict[str, str]", command: str) -> None:
    """Raise CniError(4) naming the first missing or invalid variable."""
    for name in REQUIRED_ENV[command]:
        if not env.get(name):
            raise CniError(ERR_ENV, name + " is not set", "required for CNI_COMMAND=" + command)
    cid = env.get("CNI_CONTAINERID")
    per_container = command in ("ADD", "CHECK", "DEL")
    if (
        per_container
        and cid is not None
        and (not cid[:1].isalnum() or not _ID_CHARS.issuperset(cid))
    ):
        raise CniError(ERR_ENV, "CNI_CONTAINERID is invalid", "want [a-zA-Z0-9][a-zA-Z0-9_.-]*")
    ifname = env.get("CNI_IFNAME")
    if (
        per_container
        and ifname is not None
        and (len(ifname) > 15 or ifname in (".", "..") or not _BAD_IFNAME_CHARS.isdisjoint(ifname))
    ):
        raise CniError(
            ERR_ENV,
            "CNI_IFNAME is invalid: " + repr(ifname),
            "1-15 chars, no '/', ':' or space",
        )
    netns = env.get("CNI_NETNS")
    if netns and per_container and not netns.startswith("/"):
        raise CniError(ERR_ENV, "CNI_NETNS is invalid: " + repr(netns), "want an absolute path")
    args = env.get("CNI_ARGS")
    if args:
        for part in args.split(";"):
            if part and "=" not in part:
                raise CniError(ERR_ENV, "CNI_ARGS is invalid: " + repr(part), "want K=V;K=V")


def read_stdin() -> str:
    chunks = []
    size = 0
    while True:
        chunk = posix.read(0, 65536)
        if not chunk:
            break
        size += len(chunk)
        if size > MAX_STDIN:
            raise CniError(ERR_DECODE, f"network config on stdin is larger than {MAX_STDIN} bytes")
        chunks.append(chunk)
    data = b"".join(chunks)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CniError(ERR_DECODE, f"network config on stdin is not UTF-8: {exc}") from None


def build_request(env: "dict[str, str]", text: str) -> bytes:
    parts = [_quote(k) + ":" + _quote(v) for k, v in env.items() if k.startswith("CNI_")]
    env_json = ",".join(parts)
    return f'{{"v":{PROTOCOL_VERSION},"env":{{{env_json}}},"stdin":{_quote(text)}}}'.encode("ascii")


def call_agent(path: str, request: bytes) -> "tuple[int, bytes]":
    """Send one request; return (exit code, stdout bytes). OSError when the
    agent is unreachable or hangs up before answering."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(AGENT_TIMEOUT)
        sock.connect(path)
        sock.sendall(request)
        sock.shutdown(_socket.SHUT_WR)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        sock.close()
    reply = b"".join(chunks)
    header, _, body = reply.partition(b"\n")
    if not header.startswith(_HEADER) or not header.endswith(b"}"):
        raise OSError(f"agent at {path} hung up or answered {header[:60]!r}")
    return int(header[len(_HEADER) : -1]), body


class _ScanContext:
    """What ``_json.make_scanner`` reads from ``json.JSONDecoder``: the C
    parser with ``json.loads``' defaults, without importing ``json``."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float  # NaN, Infinity, -Infinity


_JSON_SPACE = " \t\n\r"


def _netconf(text: str) -> "dict[str, object]":
    """The network config as ``json.loads`` reads it; {} when it is not a
    JSON object (the agent names the error)."""
    start = len(text) - len(text.lstrip(_JSON_SPACE))
    try:
        # typeshed types the context as a scanner; any object with its attributes does
        conf, end = _make_scanner(_ScanContext())(text, start)  # type: ignore[arg-type]
    except (StopIteration, ValueError, RecursionError):
        return {}
    if text[end:].strip(_JSON_SPACE) or not isinstance(conf, dict):
        return {}
    return conf


def _version_of(text: str) -> str:
    version = _netconf(text).get("cniVersion")
    return version if isinstance(version, str) and version else SUPPORTED_VERSIONS[-1]


def _write_all(data: bytes) -> None:
    while data:
        data = data[posix.write(1, data) :]


def emit_error(failure: CniError, text: str) -> int:
    body = (
        '{"cniVersion": ' + _quote(_version_of(text)) + ', "code": ' + str(failure.code)
        + ', "msg": ' + _quote(failure.msg)
        + (', "details": ' + _quote(failure.details) if failure.details else "")
        + "}\n"
    )  # fmt: skip
    _write_all(body.encode("ascii"))
    return 1


def emit_version(text: str) -> int:
    versions = ", ".join(_quote(v) for v in SUPPORTED_VERSIONS)
    answer = f'{{"cniVersion": {_quote(_version_of(text))}, "supportedVersions": [{versions}]}}\n'
    _write_all(answer.encode("ascii"))
    return 0


IP_CANDIDATES = ("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip")


def _run(argv: "list[str]") -> None:
    """Run iproute2 (found even when the runtime passed no PATH); errors ignored."""
    exe = next((p for p in IP_CANDIDATES if posix.access(p, posix.X_OK)), None)
    try:
        if exe is None:
            pid = posix.posix_spawnp(argv[0], argv, posix.environ)
        else:
            pid = posix.posix_spawn(exe, argv, posix.environ)
        posix.waitpid(pid, 0)
    except OSError:
        pass


def offline_del(text: str, veth_prefix: str = "tke") -> None:
    """Best-effort clean-up without the agent, from prevResult: delete our host
    veth (its /32 route goes with it; the pod side dies with the netns) and the
    pod's ip rules. The agent releases the IP when it next starts or scans."""
    prev = _netconf(text).get("prevResult")
    if not isinstance(prev, dict):
        return
    configured = _netconf(text).get("hostVethPrefix")
    prefix = configured if isinstance(configured, str) and configured else veth_prefix
    for iface in prev.get("interfaces") or ():
        name = iface.get("name") if isinstance(iface, dict) else None
        if isinstance(name, str) and not iface.get("sandbox") and name.startswith(prefix):
            _run(["ip", "link", "del", name])
    for ip in prev.get("ips") or ():
        addr = ip.get("address") if isinstance(ip, dict) else None
        if isinstance(addr, str) and "." in addr:
            host = addr.split("/")[0] + "/32"
            _run(["ip", "rule", "del", "to", host, "priority", "512"])
            _run(["ip", "rule", "del", "from", host, "priority", "1536"])


def agent_socket(text: str, default: str) -> str:
    if '"agentSocket"' in text:
        path = _netconf(text).get("agentSocket")
        if isinstance(path, str) and path:
            return path
    return default


def main(socket_path: str = DEFAULT_SOCKET) -> int:
    env = environ()
    text = ""
    try:
        command = env.get("CNI_COMMAND")
        if not command:
            raise CniError(ERR_ENV, "CNI_COMMAND is not set")
        if command not in COMMANDS:
            raise CniError(
                ERR_ENV,
                "CNI_COMMAND is invalid: " + repr(command),
                "want one of " + ", ".join(COMMANDS),
            )
        text = read_stdin()
        check_env(env, command)
        if command == "VERSION":
            return emit_version(text)
        path = agent_socket(text, socket_path)
        try:
            code, body = call_agent(path, build_request(env, text))
        except OSError as exc:
            if command == "DEL":
                offline_del(text)
                return 0
            if command == "STATUS":
                raise CniError(
                    ERR_NOT_AVAILABLE, f"tke-eni-agent is not reachable at {path}: {exc}"
                ) from None
            raise CniError(
                ERR_TRY_AGAIN,
                f"tke-eni-agent is not reachable at {path}: {exc}",
                "is the tke-eni-agent DaemonSet pod running on this node?",
            ) from None
        _write_all(body)
        return code
    except CniError as failure:
        return emit_error(failure, text)
    except OSError as exc:
        return emit_error(CniError(ERR_IO, f"tke-route-eni: I/O error: {exc}"), text)


def run(socket_path: str = DEFAULT_SOCKET) -> None:
    """``main``, then leave at once: ``_exit`` skips the interpreter's teardown
    (freeing every module and object: ~1.4 ms of CPU per call here, a sixth of
    the start-up). Nothing is lost: every byte went out through ``posix.write``,
    unbuffered. An exception escaping ``main`` (a bug) still prints its
    traceback and exits 1 the usual way."""
    posix._exit(main(socket_path))


if __name__ == "__main__":
    run(environ().get("TKE_ROUTE_ENI_SOCKET") or DEFAULT_SOCKET)
