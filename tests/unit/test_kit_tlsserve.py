"""kit.tlsserve: the TLS context shared by the scheduler extender and the
admission webhook (reload on change, a bad new file keeps the old context,
the client-certificate requirement)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kit.tlsserve import ReloadingContext, TLSConfigError, TLSFiles, build_context


def _openssl() -> str:
    path = shutil.which("openssl")
    if path is None:
        pytest.fail("openssl is not installed: install it (apt-get install openssl)")
    return path


def make_pair(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate (also usable as a CA bundle) and its key."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        [_openssl(), "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "1", "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def install(src: tuple[Path, Path], cert: Path, key: Path) -> None:
    """Copy a pair in place the way a Secret update does: new files, renamed over."""
    for source, target in zip(src, (cert, key), strict=True):
        tmp = target.with_suffix(".tmp")
        shutil.copyfile(source, tmp)
        tmp.replace(target)


def files(tmp_path: Path, **kw: Any) -> TLSFiles:
    return TLSFiles(str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"),
                    cert_label="--tls-cert-file", key_label="--tls-key-file", **kw)


def test_changed_files_give_a_new_context_and_an_ok_event(tmp_path: Path) -> None:
    first, second = make_pair(tmp_path, "first"), make_pair(tmp_path, "second")
    install(first, tmp_path / "tls.crt", tmp_path / "tls.key")
    events: list[tuple[str, dict[str, Any]]] = []
    contexts = ReloadingContext(files(tmp_path), check_interval=0.0,
                                on_event=lambda kind, f: events.append((kind, f)))
    before = contexts.current()
    assert contexts.current() is before, "unchanged files must keep the context"

    install(second, tmp_path / "tls.crt", tmp_path / "tls.key")
    after = contexts.current()

    assert after is not before
    assert (contexts.generation, contexts.reloads, contexts.failures) == (1, 1, 0)
    assert events == [("tls files reloaded", {"result": "ok"})]


def test_a_bad_new_key_keeps_the_old_context_and_reports_the_failure(tmp_path: Path) -> None:
    install(make_pair(tmp_path, "first"), tmp_path / "tls.crt", tmp_path / "tls.key")
    events: list[tuple[str, dict[str, Any]]] = []
    contexts = ReloadingContext(files(tmp_path), check_interval=0.0,
                                on_event=lambda kind, f: events.append((kind, f)))
    before = contexts.current()

    (tmp_path / "tls.key").write_text("not a key\n")
    assert contexts.current() is before
    assert (contexts.generation, contexts.reloads, contexts.failures) == (0, 0, 1)
    [(kind, fields)] = events
    assert kind == "tls reload failed" and fields["result"] == "failed"
    assert "--tls-cert-file" in fields["error"], fields["error"]

    assert contexts.current() is before, "the same bad files are not retried"
    assert len(events) == 1


def test_a_client_certificate_is_required_only_when_asked(tmp_path: Path) -> None:
    install(make_pair(tmp_path, "server"), tmp_path / "tls.crt", tmp_path / "tls.key")
    ca, _ = make_pair(tmp_path, "clients")

    assert build_context(files(tmp_path)).verify_mode == ssl.CERT_NONE
    required = build_context(files(tmp_path, client_ca_file=str(ca), require_client_cert=True))
    assert required.verify_mode == ssl.CERT_REQUIRED
    assert [c["subject"] for c in required.get_ca_certs()] == [((("commonName", "clients"),),)]


def test_a_required_client_ca_must_be_set_and_hold_a_certificate(tmp_path: Path) -> None:
    install(make_pair(tmp_path, "server"), tmp_path / "tls.crt", tmp_path / "tls.key")
    with pytest.raises(TLSConfigError, match="--client-ca-file is not set"):
        build_context(files(tmp_path, require_client_cert=True, client_ca_label="--client-ca-file"))
    (tmp_path / "ca.crt").write_text("no certificate here\n")
    with pytest.raises(TLSConfigError, match=r"ca\.crt: no"):
        build_context(files(tmp_path, client_ca_file=str(tmp_path / "ca.crt"),
                            require_client_cert=True))


def test_a_key_of_another_certificate_is_named(tmp_path: Path) -> None:
    cert, _ = make_pair(tmp_path, "a")
    _, key = make_pair(tmp_path, "b")
    install((cert, key), tmp_path / "tls.crt", tmp_path / "tls.key")
    with pytest.raises(TLSConfigError, match=r"--tls-key-file .* does not match the certificate"):
        build_context(files(tmp_path))
