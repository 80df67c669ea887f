"""Edges of the client labeler: no own labels at all, exact pseudonyms, clear refusals."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest

from flmon.catalog import OTHER_CLIENTS
from flmon.labels import ClientLabel, ClientLabeler


def test_zero_own_labels_folds_every_client() -> None:
    labeler = ClientLabeler(max_labels=0)
    assert labeler.label(5) == ClientLabel(OTHER_CLIENTS, False, True)
    assert labeler.label(5) == ClientLabel(OTHER_CLIENTS, False, False)
    assert (labeler.tracked, labeler.folded) == (0, 1)


def test_a_known_client_keeps_its_own_label() -> None:
    labeler = ClientLabeler(max_labels=1)
    assert labeler.label(7) == ClientLabel("7", True, False)
    again = labeler.label(7)
    assert again == ClientLabel("7", True, False) and again.own is True


def test_a_pseudonym_is_the_keyed_sha256_of_the_node_id() -> None:
    key = b"0123456789abcdef"
    labeler = ClientLabeler(identity="pseudonym", pseudonym_key=key)
    for node in (1, 2, 987654321):
        expected = hmac.new(key, str(node).encode(), hashlib.sha256).hexdigest()[:12]
        value = labeler.label(node).value
        assert value == f"p-{expected}"
        assert re.fullmatch(r"p-[0-9a-f]{12}", value)
    assert len({labeler.label(n).value for n in range(50)}) == 50


def test_a_key_that_is_not_utf8_is_accepted() -> None:
    labeler = ClientLabeler(identity="pseudonym", pseudonym_key=b"\xff" * 16)
    assert labeler.label(3).value.startswith("p-")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_labels": -1}, "max_client_labels must be >= 0"),
    ({"identity": "pseudonym"}, "client_identity='pseudonym' needs a pseudonym_key of >= 16 bytes"),
    ({"identity": "pseudonym", "pseudonym_key": "short"},
     "client_identity='pseudonym' needs a pseudonym_key of >= 16 bytes"),
    ({"identity": "ip"}, "client_identity must be node_id, pseudonym or none, not 'ip'"),
])
def test_refusals_say_what_to_fix(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as info:
        ClientLabeler(**kwargs)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_a_fresh_pseudonym_key_is_redacted_from_logs() -> None:
    import uuid

    from flmon.logs import redact

    key = f"key-{uuid.uuid4().hex}"  # never registered before, in this process or a parent
    assert redact(f"the key is {key}") == f"the key is {key}"
    ClientLabeler(identity="pseudonym", pseudonym_key=key)
    assert key not in redact(f"the key is {key}")
