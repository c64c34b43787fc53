"""Certificates for TLS tests, made with `openssl` in a directory of their own.

A CA; a server certificate it signs for localhost and 127.0.0.1; one it
signs for another name only; a client certificate for the account
`certified`; and a second CA that signed none of them.
"""

import subprocess
from dataclasses import dataclass
from pathlib import Path

# The account a client certificate is made for (PostgreSQL's `cert` method
# takes the certificate's common name as the user name).
CLIENT_USER = "certified"
# Elliptic-curve keys: made in milliseconds, where RSA keys take a second each.
_NEW_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class Pair:
    certificate: Path
    key: Path


@dataclass(frozen=True)
class Certificates:
    ca: Path
    other_ca: Path
    server: Pair
    wrong_name: Pair
    client: Pair


def make_certificates(directory: Path) -> Certificates:
    directory.mkdir(parents=True, exist_ok=True)
    ca = _authority(directory, "ca", "items test CA")
    other_ca = _authority(directory, "other-ca", "another CA")
    return Certificates(
        ca=ca.certificate,
        other_ca=other_ca.certificate,
        server=_signed(directory, ca, "server", "localhost", "DNS:localhost,IP:127.0.0.1"),
        wrong_name=_signed(directory, ca, "wrong-name", "wrong.example", "DNS:wrong.example"),
        client=_signed(directory, ca, "client", CLIENT_USER, f"DNS:{CLIENT_USER}"),
    )


def _authority(directory: Path, name: str, subject: str) -> Pair:
    pair = Pair(directory / f"{name}.pem", directory / f"{name}.key")
    _openssl(
        "req", "-x509", *_NEW_KEY, "-keyout", str(pair.key), "-out", str(pair.certificate),
        "-days", "2", "-subj", f"/CN={subject}",
    )  # fmt: skip
    return pair


def _signed(directory: Path, ca: Pair, name: str, common_name: str, names: str) -> Pair:
    pair = Pair(directory / f"{name}.pem", directory / f"{name}.key")
    request = directory / f"{name}.csr"
    extensions = directory / f"{name}.ext"
    extensions.write_text(f"subjectAltName = {names}\nbasicConstraints = CA:FALSE\n")
    _openssl(
        "req", "-new", *_NEW_KEY, "-keyout", str(pair.key), "-out", str(request),
        "-subj", f"/CN={common_name}",
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", str(request), "-CA", str(ca.certificate), "-CAkey", str(ca.key),
        "-CAcreateserial", "-out", str(pair.certificate), "-days", "2",
        "-extfile", str(extensions),
    )  # fmt: skip
    return pair


def _openssl(*arguments: str) -> None:
    subprocess.run(["openssl", *arguments], check=True, capture_output=True)
