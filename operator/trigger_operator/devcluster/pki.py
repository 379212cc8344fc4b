"""Certificates and keys for the dev control plane, made with `cryptography`.

One self-signed CA signs the API server's serving certificate and one client
certificate per component; the RBAC identities follow the upstream conventions
(`system:kube-controller-manager`, `system:kube-scheduler`, and `system:masters`
for the admin), so the API server's bootstrap roles apply unchanged. A separate RSA
key pair signs service-account tokens. Nothing here is meant for a real cluster.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from trigger_operator.clock import SystemClock

_VALIDITY = timedelta(days=365)


@dataclass(frozen=True)
class Credential:
    """A certificate and its key, as files."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    """Every file the control plane's components are started with."""

    ca: Credential
    apiserver: Credential
    admin: Credential
    controller_manager: Credential
    scheduler: Credential
    service_account_key: Path
    service_account_pub: Path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    *,
    now: datetime,
    ca: bool,
) -> x509.CertificateBuilder:
    """A certificate valid from a few minutes ago for `_VALIDITY`, for a CA or a leaf."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=not ca,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )


def _issue(
    directory: Path,
    stem: str,
    *,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    subject: x509.Name,
    now: datetime,
    server_names: list[str] | None = None,
) -> Credential:
    key = ec.generate_private_key(ec.SECP256R1())
    ca_cert, ca_key = ca
    builder = _builder(subject, ca_cert.subject, key.public_key(), now=now, ca=False)
    if server_names is not None:
        alt_names: list[x509.GeneralName] = []
        for name in server_names:
            try:
                alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alt_names.append(x509.DNSName(name))
        builder = builder.add_extension(
            x509.SubjectAlternativeName(alt_names), critical=False
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    cert = builder.sign(ca_key, hashes.SHA256())
    credential = Credential(cert=directory / f"{stem}.crt", key=directory / f"{stem}.key")
    credential.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(credential.key, key)
    return credential


def generate(directory: Path, *, now: datetime | None = None) -> Pki:
    """Write a fresh CA, component certificates and service-account keys into `directory`."""
    now = now or SystemClock().now()
    directory.mkdir(parents=True, exist_ok=True)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_subject = _name("trigger-operator-dev-ca")
    ca_cert = _builder(ca_subject, ca_subject, ca_key.public_key(), now=now, ca=True).sign(
        ca_key, hashes.SHA256()
    )
    ca = Credential(cert=directory / "ca.crt", key=directory / "ca.key")
    ca.cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_key(ca.key, ca_key)
    signer = (ca_cert, ca_key)

    apiserver = _issue(
        directory,
        "apiserver",
        ca=signer,
        subject=_name("kube-apiserver"),
        now=now,
        server_names=[
            "127.0.0.1",
            "10.96.0.1",
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ],
    )
    admin = _issue(
        directory, "admin", ca=signer, subject=_name("dev-admin", "system:masters"), now=now
    )
    controller_manager = _issue(
        directory,
        "controller-manager",
        ca=signer,
        subject=_name("system:kube-controller-manager"),
        now=now,
    )
    scheduler = _issue(
        directory, "scheduler", ca=signer, subject=_name("system:kube-scheduler"), now=now
    )

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sa_key_path = directory / "sa.key"
    sa_pub_path = directory / "sa.pub"
    _write_key(sa_key_path, sa_key)
    sa_pub_path.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return Pki(
        ca=ca,
        apiserver=apiserver,
        admin=admin,
        controller_manager=controller_manager,
        scheduler=scheduler,
        service_account_key=sa_key_path,
        service_account_pub=sa_pub_path,
    )
