"""The metrics server's certificate: served, renewed from its files, and kept when broken."""

from __future__ import annotations

import shutil
import ssl
from pathlib import Path

import pytest

from trigger_operator.devcluster import pki
from trigger_operator.handlers.serving import ServingCertificate


def _install(tmp_path: Path, name: str, served: Path) -> Path:
    """A new CA and a certificate for 127.0.0.1 as the served pair; returns the CA file."""
    issued = pki.generate(tmp_path / name)
    shutil.copyfile(issued.apiserver.cert, served / "tls.crt")
    shutil.copyfile(issued.apiserver.key, served / "tls.key")
    return issued.ca.cert


def _handshake(server: ssl.SSLContext, ca: Path) -> bytes:
    """A TLS handshake in memory with a client trusting `ca`; the certificate it was shown."""
    client = ssl.create_default_context(cafile=str(ca))
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    client_side = client.wrap_bio(to_client, to_server, server_hostname="127.0.0.1")
    from_client, from_server = ssl.MemoryBIO(), ssl.MemoryBIO()
    server_side = server.wrap_bio(from_client, from_server, server_side=True)
    for _ in range(10):
        done = 0
        for side in (client_side, server_side):
            try:
                side.do_handshake()
                done += 1
            except ssl.SSLWantReadError:
                pass
        from_client.write(to_server.read())
        to_client.write(from_server.read())
        if done == 2:
            break
    certificate = client_side.getpeercert(binary_form=True)
    assert certificate is not None
    return certificate


def test_a_renewed_pair_is_served_to_the_next_connection(tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    first_ca = _install(tmp_path, "first", served)
    serving = ServingCertificate(served)
    first = _handshake(serving.context, first_ca)

    serving.refresh()  # nothing changed
    assert _handshake(serving.context, first_ca) == first

    second_ca = _install(tmp_path, "second", served)
    serving.refresh()
    assert _handshake(serving.context, second_ca) != first
    with pytest.raises(ssl.SSLError):
        _handshake(serving.context, first_ca)


def test_a_broken_pair_is_logged_and_the_previous_one_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    served = tmp_path / "served"
    served.mkdir()
    ca = _install(tmp_path, "first", served)
    serving = ServingCertificate(served)
    shown = _handshake(serving.context, ca)

    (served / "tls.key").write_text("half a key")
    serving.refresh()

    assert "serving certificate not reloaded" in caplog.text
    assert _handshake(serving.context, ca) == shown
