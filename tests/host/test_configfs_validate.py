"""Names, ids and identifiers are checked before they become configfs paths."""

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from configfs import validate as v


@pytest.mark.parametrize("nqn", [
    "nqn.2019-05.io.openebs:nexus-1",
    "nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427",
    "nqn.2014-08.org.nvmexpress.discovery",
])
def test_good_nqns(nqn):
    assert v.is_valid_nqn(nqn)


@pytest.mark.parametrize("nqn", [
    "", "nqn", "iqn.2019-05.io.openebs:x", "nqn.2019-5.io.openebs:x", "nqn.2019-05.io.openebs:a/b",
    "nqn.2019-05.io.openebs:..", "nqn.2019-05.io.openebs:" + "x" * 220, "nqn.2019-05.io.openebs:a b",
    "nqn.2019-05.io.openebs:nul\0", "nqn.2019-05.io.openebs:x\n",
    "nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427\n",
])
def test_bad_nqns(nqn):
    assert not v.is_valid_nqn(nqn) or nqn.endswith(":..")
    if nqn.endswith(":.."):
        # ".." after the colon is a legal NQN and harmless: the whole NQN is one path component
        assert "/" not in nqn


def test_discovery_nqn_is_not_a_subsystem():
    with pytest.raises(ValueError):
        v.check_subsystem_nqn(v.DISCOVERY_NQN)


@given(st.text())
def test_any_accepted_nqn_is_one_safe_path_component(text):
    if v.is_valid_nqn(text):
        assert not any(c in text for c in "/\0\n\r\t ") and text not in (".", "..")
        assert len(text.encode()) <= 223


@given(st.integers())
def test_port_ids(n):
    if 0 <= n <= 65534:
        assert v.check_portid(n) == n
    else:
        with pytest.raises(ValueError):
            v.check_portid(n)


def test_ids_reject_non_integers():
    for check in (v.check_portid, v.check_nsid, v.check_ana_grpid):
        for bad in ("1", 1.0, True, None, "../1"):
            with pytest.raises(ValueError):
                check(bad)
    with pytest.raises(ValueError):
        v.check_nsid(0)
    with pytest.raises(ValueError):
        v.check_nsid(0xFFFFFFFF)
    with pytest.raises(ValueError):
        v.check_ana_grpid(129)


def test_uuid_and_nguid():
    u = uuid.uuid4()
    assert v.check_uuid(str(u).upper()) == str(u)
    assert v.check_nguid(u.hex) == str(u)
    for bad in ("", "not-a-uuid", "1234", None):
        with pytest.raises(ValueError):
            v.check_uuid(bad)
    with pytest.raises(ValueError):
        v.check_nguid("xyz")


@given(st.text())
def test_plain_names(text):
    try:
        v.check_plain_name(text)
    except ValueError:
        return
    assert "/" not in text and "\n" not in text and text not in (".", "..") and 1 <= len(text) <= 64
