"""The certificates and SuperNode keys the stack and the demo make at run time."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_ssh_private_key
from flwr.cli.supernode.register import try_load_public_key

from flmon.stack.tls import make_node_key, make_pki


def test_the_server_certificate_is_signed_by_the_ca_for_the_hosts(tmp_path: Path) -> None:
    pki = make_pki(tmp_path, hosts=("127.0.0.1", "superlink.fl.svc"))
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(pki.server_cert.read_bytes())
    server.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert san.get_values_for_type(x509.DNSName) == ["superlink.fl.svc"]
    assert stat.S_IMODE(pki.server_key.stat().st_mode) == 0o600


def test_node_keys_are_what_flower_loads(tmp_path: Path) -> None:
    key = make_node_key(tmp_path, "supernode-0")
    assert try_load_public_key(key.public)  # what `flwr supernode register` accepts
    private = load_ssh_private_key(key.private.read_bytes(), password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert private.curve.name == "secp384r1"
    assert stat.S_IMODE(key.private.stat().st_mode) == 0o600


def test_a_pki_needs_a_host(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="hosts"):
        make_pki(tmp_path, hosts=())
