"""The Dockerfile at the repository root (no Docker engine here, so it cannot be
built in the tests): parsed, and checked against the repository — base image,
COPY sources exist and are not excluded by .dockerignore, every package of
setup.cfg is copied, CMD/ENTRYPOINT and every manifest's command name console
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


def test_known_instructions_and_base_image() -> None:
    ins = instructions()
    known = {"FROM", "RUN", "COPY", "ENV", "WORKDIR", "USER", "CMD", "ENTRYPOINT", "LABEL", "ARG"}
    assert {w for w, _ in ins} <= known, {w for w, _ in ins} - known
    froms = [rest for w, rest in ins if w == "FROM"]
    assert froms and all(f.split()[0] == "python:3.11-slim" for f in froms), froms
    user = [rest for w, rest in ins if w == "USER"]
    assert user and user[-1].split(":")[0] != "0", "the image's default user must not be root"


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
    missing = [p for p in packages() if p not in copied]
    assert not missing, f"packages of setup.cfg not copied into the image: {missing}"
    assert "setup.cfg" in copied and "pyproject.toml" in copied and "README.md" in copied
    for must in (".venv", ".git"):
        assert must in ignored, f".dockerignore must exclude {must}"


def test_stubs_are_generated_before_the_final_install() -> None:
    runs = " ".join(rest for w, rest in instructions() if w == "RUN")
    build = runs.index("protos.build")
    assert re.search(r"pip install [^&]*\.", runs[:build]), (
        "deps (grpcio-tools) before protos.build"
    )
    assert "pip install --no-deps --force-reinstall ." in runs[build:], "reinstall after the stubs"


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
