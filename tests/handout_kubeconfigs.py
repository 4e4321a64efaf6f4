"""Test material for the kubeconfigs istio-lab writes for someone else
(plugins/filter/kubeconfig.py): client certificates and an instructor's
multi-context kubeconfig whose credentials are tokens, certificate files
(relative, absolute, under ~) and embedded data."""

from __future__ import annotations

import base64
import datetime
import os
from pathlib import Path

import yaml


def client_certificate(common_name: str) -> tuple[bytes, bytes]:
    """A self-signed client certificate and its key (PEM), valid two days."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "istio-lab-students")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write_private(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return path


def write_kubeconfig(path: Path, config: dict) -> Path:
    return write_private(path, yaml.safe_dump(config, sort_keys=False).encode())


def secrets_of(user: dict, base_dir: Path) -> list[str]:
    """Every secret string a source user entry holds or names, as it would appear in a file or a log
    (a token as is, a certificate or key as its base64 and as its PEM)."""
    found = []
    for field in ("token", "password"):
        if user.get(field):
            found.append(user[field])
    for field in ("client-key-data", "client-certificate-data"):
        if user.get(field):
            found.append(user[field])
            found.append(base64.b64decode(user[field]).decode().splitlines()[1])
    for field in ("client-key", "client-certificate"):
        if user.get(field):
            pem = (base_dir / os.path.expanduser(user[field])).read_bytes()
            found.append(b64(pem))
            found.append(pem.decode().splitlines()[1])
    return found
