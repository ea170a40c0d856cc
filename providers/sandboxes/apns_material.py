"""Credentials for the APNs sandbox: a CA, a server certificate and a .p8 signing key.

Generated fresh into a directory on every start so that no secret ever lives in the repository.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True, slots=True)
class ApnsMaterial:
    """Files and identifiers a client needs to talk to the sandbox."""

    ca_file: Path
    cert_file: Path
    cert_key_file: Path
    key_file: Path  # the .p8 signing key, as Apple hands it out
    key_id: str
    team_id: str


def _apple_id() -> str:
    # Apple's key and team identifiers are 10 upper-case alphanumerics.
    return "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(10))


def _certificate(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer_key: ec.EllipticCurvePrivateKey,
    extensions: list[tuple[x509.ExtensionType, bool]],
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256())


def generate_apns_material(directory: Path) -> tuple[ApnsMaterial, ec.EllipticCurvePrivateKey]:
    """Write a CA, a 127.0.0.1/localhost server certificate and a P-256 .p8 key to ``directory``.

    Returns the paths and ids plus the signing key (the sandbox verifies JWTs with its public half).
    """
    directory.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    pkcs8 = serialization.PrivateFormat.PKCS8
    plain = serialization.NoEncryption()

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "notify APNs sandbox CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    cert_sign = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
    ca_cert = _certificate(
        ca_name,
        ca_name,
        ca_key.public_key(),
        ca_key,
        [(x509.BasicConstraints(ca=True, path_length=0), True), (cert_sign, True), (ca_ski, False)],
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    # Both names so that clients may dial either; Python checks IP SANs for IP hosts.
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server_cert = _certificate(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]),
        ca_name,
        server_key.public_key(),
        ca_key,
        [
            (x509.SubjectAlternativeName(names), False),
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), False),
            (x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), False),
        ],
    )
    signing_key = ec.generate_private_key(ec.SECP256R1())
    key_id, team_id = _apple_id(), _apple_id()
    material = ApnsMaterial(
        ca_file=directory / "apns-ca.pem",
        cert_file=directory / "apns-server.pem",
        cert_key_file=directory / "apns-server-key.pem",
        key_file=directory / f"AuthKey_{key_id}.p8",
        key_id=key_id,
        team_id=team_id,
    )
    material.ca_file.write_bytes(ca_cert.public_bytes(pem))
    material.cert_file.write_bytes(server_cert.public_bytes(pem))
    material.cert_key_file.write_bytes(server_key.private_bytes(pem, pkcs8, plain))
    material.key_file.write_bytes(signing_key.private_bytes(pem, pkcs8, plain))
    return material, signing_key
