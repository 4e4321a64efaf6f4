"""A self-signed serving certificate for `KubeDouble(tls=True)` and
`CountingProxy(tls=True)`: kubectl (client-go) sends credentials only over
TLS, so kubectl needs it."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
import ssl
import tempfile

_CACHE: dict[str, tuple[str, str, bytes]] = {}


def _generate(host: str) -> tuple[str, str, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-double")])
    now = datetime.datetime.now(datetime.UTC)
    addresses = {ipaddress.ip_address(host), ipaddress.ip_address("127.0.0.1")}
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")] +
                                                       [x509.IPAddress(a) for a in sorted(addresses, key=str)]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    folder = tempfile.mkdtemp(prefix="kube-double-tls-")
    cert_file, key_file = os.path.join(folder, "tls.crt"), os.path.join(folder, "tls.key")
    with open(cert_file, "wb") as handle:
        handle.write(cert_pem)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key_pem)
    return cert_file, key_file, cert_pem


def server_context(host: str) -> tuple[ssl.SSLContext, str]:
    """An SSL context for `host` and the CA data (base64 PEM) for a kubeconfig.
    One certificate per host and process."""
    if host not in _CACHE:
        _CACHE[host] = _generate(host)
    cert_file, key_file, cert_pem = _CACHE[host]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context, base64.b64encode(cert_pem).decode()
