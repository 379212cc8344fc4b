"""The dev cluster's certificates: signed by its CA, with the RBAC identities upstream uses."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from trigger_operator.devcluster import pki

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_every_certificate_is_signed_by_the_ca_and_valid_now(tmp_path: Path) -> None:
    files = pki.generate(tmp_path, now=NOW)
    ca = _load(files.ca.cert)
    ca_key = ca.public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey)

    for credential in (files.apiserver, files.admin, files.controller_manager, files.scheduler):
        cert = _load(credential.cert)
        cert.verify_directly_issued_by(ca)
        assert cert.not_valid_before_utc <= NOW <= cert.not_valid_after_utc


def test_client_identities_match_the_bootstrap_rbac_subjects(tmp_path: Path) -> None:
    files = pki.generate(tmp_path, now=NOW)

    def subject(path: Path) -> tuple[str, list[str]]:
        name = _load(path).subject
        cn = name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        orgs = [a.value for a in name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
        return str(cn), [str(o) for o in orgs]

    assert subject(files.admin.cert)[1] == ["system:masters"]
    assert subject(files.controller_manager.cert)[0] == "system:kube-controller-manager"
    assert subject(files.scheduler.cert)[0] == "system:kube-scheduler"


def test_serving_certificate_names_loopback_and_the_kubernetes_service(tmp_path: Path) -> None:
    files = pki.generate(tmp_path, now=NOW)
    cert = _load(files.apiserver.cert)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value

    assert "kubernetes.default.svc" in names.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == [
        "127.0.0.1",
        "10.96.0.1",
    ]
    assert ExtendedKeyUsageOID.SERVER_AUTH in usage


def test_private_keys_are_readable_by_the_owner_only(tmp_path: Path) -> None:
    files = pki.generate(tmp_path, now=NOW)

    for key in (files.ca.key, files.admin.key, files.service_account_key):
        assert key.stat().st_mode & 0o077 == 0
