"""The package installed the ordinary way, into a clean venv: ``pip install .``, the
wheel of ``pip wheel .`` and the wheel built from an sdist. Each time every console
script answers ``--help`` from outside the repository, and the installed device plugin
imports its (committed) gRPC stubs and registers with the kubelet stand-in.

What goes into which wheel, built from a copy of the whole clone (tests/, bench/ and
testbed/ included): the product's wheel holds the packages of setup.cfg and nothing of
the test bed, tests/ or bench/; the test bed's wheel (``pip wheel ./testbed``) holds
exactly the test bed's packages (every package folder under testbed/).

Needs python3's venv module and pip's package registry (or its cache) for the
dependencies: hack/setup.sh."""

from __future__ import annotations

import configparser
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.names import RESOURCE_ENI_IP
from harness.kubelet import KubeletStandin

REPO = Path(__file__).resolve().parents[2]
S5_LARGE8 = 27  # (4 − 1) × (10 − 1) ENI IPs of the limits table
STUBS = ("protos/v1beta1/api.proto", "protos/v1beta1/api_pb2.py",
         "protos/v1beta1/api_pb2_grpc.py", "protos/v1beta1/api_pb2.pyi")
#: The test bed's packages (testbed/pyproject.toml): never in the product's wheel.
TEST_BED_PACKAGES = {p.parent.name for p in (REPO / "testbed").glob("*/__init__.py")}
#: Neither in any wheel.
NOT_PACKAGED = {"tests", "bench", "testbed", "hack", "deploy", "docs"}
GENERATED = (".git", ".venv", "_out", "build", "dist", "*.egg-info", "__pycache__",
             ".*_cache", "mutants")


def run(argv: list[str], what: str, cwd: Path, timeout: float = 600) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert proc.returncode == 0, (
        f"{what} failed (rc {proc.returncode}): {' '.join(argv)}\n{proc.stdout[-3000:]}\n"
        f"{proc.stderr[-3000:]}")
    return proc.stdout


def console_scripts() -> list[str]:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    raw = cfg["options.entry_points"]["console_scripts"]
    return sorted(line.split("=", 1)[0].strip() for line in raw.splitlines() if "=" in line)


@pytest.fixture(scope="module")
def work() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="tke-pkg-", dir="/tmp"))  # short: unix socket paths
    yield d
    shutil.rmtree(d, ignore_errors=True)


def copy_clone(dest: Path, *, skip: tuple[str, ...]) -> Path:
    """What a clone holds (the files git tracks or would track: never a generated file
    that .gitignore hides) but the top-level folders ``skip``, copied so that builds
    write nothing into the repository."""
    if not (REPO / ".git").exists():  # e.g. an unpacked sdist
        shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(*GENERATED, *skip),
                        symlinks=True)
        return dest
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                 "git ls-files", REPO)
    for name in filter(None, listed.split("\0")):
        path = REPO / name
        if name.split("/", 1)[0] in skip or not path.is_file():
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest / name)
    return dest


@pytest.fixture(scope="module")
def source(work: Path) -> Path:
    """The clone without tests/ and bench/ (what a user installs from)."""
    return copy_clone(work / "src", skip=("tests", "bench"))


@pytest.fixture(scope="module")
def whole_clone(work: Path) -> Path:
    """The clone with everything, tests/, bench/ and testbed/ too: a wheel built from it
    shows what the packaging itself picks up."""
    return copy_clone(work / "clone", skip=())


def top_level(wheel: Path) -> set[str]:
    """The top-level names of a wheel (packages and modules), its .dist-info left out."""
    with zipfile.ZipFile(wheel) as z:
        tops = {n.split("/", 1)[0] for n in z.namelist()}
    return {t.removesuffix(".py") for t in tops if not t.endswith(".dist-info")}


def product_packages() -> set[str]:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    names = cfg["options.packages.find"]["include"].split()
    return {n for n in names if "." not in n and "*" not in n}


def build_wheel(project: Path, out: Path, work: Path) -> Path:
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out),
         str(project)], f"pip wheel --no-deps {project}", work)
    (wheel,) = out.glob("*.whl")
    return wheel


@pytest.fixture(scope="module")
def venv(work: Path, source: Path) -> Path:
    """A clean venv (no system site-packages) with ``pip install <source>``."""
    v = work / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    run([base, "-m", "venv", str(v)], "python -m venv (python3-venv: hack/setup.sh)", work)
    run([str(v / "bin/pip"), "install", "-q", str(source)],
        "pip install . with its dependencies (needs the package registry or pip's cache; "
        "set-up: hack/setup.sh)", work)
    return v


@pytest.fixture(scope="module")
def wheels(work: Path, source: Path) -> dict[str, Path]:
    """``pip wheel .`` and sdist -> ``pip wheel <sdist>``."""
    direct, sdist_dir, from_sdist = work / "wheel", work / "sdist", work / "wheel-from-sdist"
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(direct),
         str(source)], "pip wheel .", work)
    run([sys.executable, "-c",
         f"from setuptools import build_meta as b; b.build_sdist({str(sdist_dir)!r})"],
        "sdist build (setuptools.build_meta.build_sdist)", source)
    (sdist,) = sdist_dir.glob("*.tar.gz")
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(from_sdist),
         str(sdist)], "pip wheel <sdist>", work)
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    missing = [s for s in STUBS if s not in names]
    assert not missing, f"{sdist.name} lacks {missing}"
    (w1,) = direct.glob("*.whl")
    (w2,) = from_sdist.glob("*.whl")
    return {"pip wheel .": w1, "sdist -> wheel": w2}


def check_installed(venv: Path, work: Path) -> None:
    """Every console script answers --help; the device plugin registers (from outside
    the repository: nothing but the venv on the path)."""
    outside = work / "elsewhere"
    outside.mkdir(exist_ok=True)
    for script in console_scripts():
        exe = venv / "bin" / script
        assert exe.is_file(), f"console script {script} not installed"
        out = run([str(exe), "--help"], f"{script} --help", outside, timeout=120)
        assert "usage" in out.lower(), f"{script} --help printed no usage: {out[:300]}"
    run([str(venv / "bin/python"), "-c",
         "import protos.v1beta1.api_pb2_grpc as g, device_plugin, os; "
         "assert g.__file__.startswith(os.environ['VENV']), g.__file__"],
        "the installed stubs import", outside)
    register(venv, work)


def register(venv: Path, work: Path) -> None:
    plugin_dir = Path(tempfile.mkdtemp(prefix="dp-", dir=work))
    kubelet = KubeletStandin(str(plugin_dir)).start()
    log = (work / "device-plugin.log").open("w")
    proc = subprocess.Popen(
        [str(venv / "bin/tke-eni-device-plugin"), "--device-plugin-dir", str(plugin_dir),
         "--instance-id", "ins-test0001", "--instance-type", "S5.LARGE8",
         "--limits-source", "table", "--metadata-url", "http://127.0.0.1:9/latest/meta-data/",
         "--metrics-bind-address", ""],
        cwd=work, stdout=log, stderr=subprocess.STDOUT)
    try:
        ok = kubelet.wait_capacity(RESOURCE_ENI_IP, S5_LARGE8, timeout=60)
        assert ok, (f"the installed device plugin did not register {S5_LARGE8} "
                    f"{RESOURCE_ENI_IP} (exit {proc.poll()}); log:\n"
                    f"{(work / 'device-plugin.log').read_text()[-3000:]}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        kubelet.stop()


def test_pip_install_dot(venv: Path, work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VENV", str(venv))
    check_installed(venv, work)


@pytest.mark.parametrize("kind", ["pip wheel .", "sdist -> wheel"])
def test_wheel(kind: str, wheels: dict[str, Path], venv: Path, work: Path,
               monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = wheels[kind]
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    missing = [s for s in STUBS if s not in names]
    assert not missing, f"{kind}: {wheel.name} lacks {missing}"
    assert not [n for n in names if n.startswith("tests/")], f"{kind}: tests in the wheel"
    run([str(venv / "bin/pip"), "install", "-q", "--no-deps", "--force-reinstall", str(wheel)],
        f"pip install {wheel.name}", work)
    monkeypatch.setenv("VENV", str(venv))
    check_installed(venv, work)


def test_product_wheel_holds_no_test_bed(whole_clone: Path, work: Path) -> None:
    assert {"vpcsim", "localcluster", "localnode", "localrun"} <= TEST_BED_PACKAGES
    wheel = build_wheel(whole_clone, work / "product-wheel", work)
    tops = top_level(wheel)
    assert not tops & TEST_BED_PACKAGES, (
        f"{wheel.name}: test-bed packages in the product's wheel: {tops & TEST_BED_PACKAGES}")
    assert not tops & NOT_PACKAGED, f"{wheel.name}: {tops & NOT_PACKAGED} in the wheel"
    assert tops == product_packages(), (
        f"{wheel.name} holds {sorted(tops)}; setup.cfg names {sorted(product_packages())}")


def test_test_bed_wheel_holds_exactly_the_test_bed(whole_clone: Path, work: Path) -> None:
    wheel = build_wheel(whole_clone / "testbed", work / "testbed-wheel", work)
    assert wheel.name.startswith("tke_vpc_cni_testbed-"), wheel.name
    tops = top_level(wheel)
    assert tops == TEST_BED_PACKAGES, (
        f"{wheel.name} holds {sorted(tops)}, the test bed is {sorted(TEST_BED_PACKAGES)}")
