"""The Dockerfile at the repository root, parsed and checked against the repository
(tests/e2e/test_image.py builds it for real with buildah): base image as a build
argument, COPY sources exist and are not excluded by .dockerignore, every component
package of setup.cfg is copied and the test bed is not, the default user is the
non-root user of deploy/, CMD/ENTRYPOINT and every manifest's command name console
scripts of setup.cfg."""

from __future__ import annotations

import configparser
import fnmatch
import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        word, _, rest = full.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, "Dockerfile ends inside a continuation line"
    return out


def console_scripts() -> set[str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    raw = cfg["options.entry_points"]["console_scripts"]
    return {line.split("=", 1)[0].strip() for line in raw.strip().splitlines() if "=" in line}


def packages() -> list[str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    names = cfg["options.packages.find"]["include"].split()
    return sorted({n for n in names if "." not in n and not n.endswith("*")})


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


TEST_BED = ("testbed",)
#: The test bed's packages (testbed/pyproject.toml), by name wherever they might be copied from.
TEST_BED_PACKAGES = {p.parent.name for p in (ROOT / "testbed").glob("*/__init__.py")}
TEST_BED_SCRIPTS = ("tke-localcluster", "tke-vpcsim")


def test_known_instructions_and_base_image() -> None:
    ins = instructions()
    known = {"FROM", "RUN", "COPY", "ENV", "WORKDIR", "USER", "CMD", "ENTRYPOINT", "LABEL", "ARG"}
    assert {w for w, _ in ins} <= known, {w for w, _ in ins} - known
    assert ins[0] == ("ARG", "BASE_IMAGE=python:3.11-slim"), (
        "the base is a build argument whose default is the public python:3.11-slim")
    froms = [rest for w, rest in ins if w == "FROM"]
    assert froms and all(f.split()[0] == "${BASE_IMAGE}" for f in froms), froms


def non_root_users_of_manifests() -> set[int]:
    """runAsUser of every pod/container of deploy/ that runs as non-root."""
    users: set[int] = set()
    for path in sorted((ROOT / "deploy").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict) or doc.get("kind") not in ("Deployment", "DaemonSet"):
                continue
            spec = doc["spec"]["template"]["spec"]
            contexts = [spec.get("securityContext") or {}] + [
                c.get("securityContext") or {} for c in spec.get("containers") or []]
            users |= {int(sc["runAsUser"]) for sc in contexts
                      if sc.get("runAsNonRoot") and "runAsUser" in sc}
    return users


def test_default_user_is_the_non_root_user_of_the_manifests() -> None:
    user = [rest for w, rest in instructions() if w == "USER"]
    assert user, "the image needs a USER"
    uid = int(user[-1].split(":")[0])
    assert uid != 0, "the image's default user must not be root"
    assert non_root_users_of_manifests() == {uid}, (
        f"USER {uid}: deploy/ runs its non-root pods as {non_root_users_of_manifests()}")


def test_cmd_and_entrypoint_are_console_scripts() -> None:
    scripts = console_scripts()
    found = 0
    for word, rest in instructions():
        if word in ("CMD", "ENTRYPOINT"):
            argv = json.loads(rest)  # exec form only: signals reach the program
            assert isinstance(argv, list) and argv, rest
            assert argv[0] in scripts, f"{word} {argv[0]!r} is not a console script of setup.cfg"
            found += 1
    assert found


def test_every_copy_source_exists_and_every_package_is_copied() -> None:
    ignored = dockerignore()
    copied: set[str] = set()
    for word, rest in instructions():
        if word != "COPY" or rest.startswith("--from="):
            continue
        *sources, _dest = rest.split()
        for src in sources:
            name = src.rstrip("/")
            assert (ROOT / name).exists(), f"COPY {src}: not in the repository"
            assert not any(fnmatch.fnmatch(name, pat) for pat in ignored), (
                f"{src} is in .dockerignore"
            )
            copied.add(name)
    missing = [p for p in packages() if p not in copied and p not in TEST_BED]
    assert not missing, f"packages of setup.cfg not copied into the image: {missing}"
    assert not copied & set(TEST_BED), f"the test bed is copied into the image: {copied}"
    into_test_bed = [c for c in copied if c.split("/")[0] in TEST_BED
                     or c.split("/")[-1] in TEST_BED_PACKAGES]
    assert not into_test_bed, f"test-bed paths copied into the image: {into_test_bed}"
    assert set(TEST_BED) <= set(ignored), "the test bed stays out of the build context"
    assert "setup.cfg" in copied and "pyproject.toml" in copied and "README.md" in copied
    for must in (".venv", ".git"):
        assert must in ignored, f".dockerignore must exclude {must}"


def test_dependencies_before_sources_and_no_stub_generation() -> None:
    ins = instructions()
    first_source = next(i for i, (w, rest) in enumerate(ins) if w == "COPY" and
                        rest.split()[0].rstrip("/") in packages())
    deps = [i for i, (w, rest) in enumerate(ins)
            if w == "RUN" and re.search(r"pip install \.(\s|$)", rest)]
    assert deps and deps[0] < first_source, (
        "the dependencies are installed from setup.cfg before the sources are copied "
        "(a cached layer until setup.cfg changes)")
    runs = " ".join(rest for w, rest in ins if w == "RUN")
    assert "protos.build" not in runs, "the stubs are committed (protos/build.py)"
    assert "pip install --no-deps ." in runs
    for script in TEST_BED_SCRIPTS:
        assert script not in console_scripts(), (
            f"{script} is the test bed's (testbed/pyproject.toml), not the product's")


def test_manifest_commands_are_console_scripts() -> None:
    scripts = console_scripts()
    seen = 0
    for path in sorted((ROOT / "deploy").rglob("*.yaml")):
        if {"examples", "knobs"} & set(path.relative_to(ROOT / "deploy").parts):
            continue  # users' workloads (nginx, busybox); patches
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict) or doc.get("kind") not in ("Deployment", "DaemonSet"):
                continue
            spec = doc.get("spec", {}).get("template", {}).get("spec", {})
            for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
                command = c.get("command") or []
                assert command and command[0] in scripts, f"{path}: {c.get('name')}: {command}"
                seen += 1
    assert seen


def test_privileged_containers_say_they_run_as_root() -> None:
    """The image's USER is non-root, so a container that needs root (privileged: sysctls,
    netlink, the CNI dirs of the node) must say runAsUser: 0 itself; else it runs as the
    image's user and fails (found running deploy/'s DaemonSet as pods: the agent could not
    write /proc/sys/net/ipv4/ip_forward)."""
    for path in sorted((ROOT / "deploy").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict) or doc.get("kind") not in ("Deployment", "DaemonSet"):
                continue
            spec = doc["spec"]["template"]["spec"]
            pod_user = (spec.get("securityContext") or {}).get("runAsUser")
            for c in spec.get("containers") or []:
                sc = c.get("securityContext") or {}
                if sc.get("privileged"):
                    user = sc.get("runAsUser", pod_user)
                    assert user == 0, (
                        f"{path.relative_to(ROOT)}: container {c['name']} is privileged but "
                        f"runs as {user!r} (the image's USER unless it says runAsUser: 0)")
