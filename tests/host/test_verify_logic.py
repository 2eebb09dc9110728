"""The verify's comparison and repair-source choice (pure logic; the verify itself runs in the VM)."""

import pytest

from mayastor import validate
from mayastor.errors import InvalidArgument
from mayastor.health.verify import mismatching, pick_source


def test_mismatching_segments():
    assert mismatching([[1, 2, 3], [1, 2, 3]]) == []
    assert mismatching([[1, 2, 3], [1, 9, 3], [1, 2, 4]]) == [1, 2]


def test_majority_wins_and_ties_need_a_preference():
    order = ["a", "b", "c"]
    assert pick_source({"a": 5, "b": 7, "c": 7}, order)[0] == "b"  # first of the majority in slot order
    assert pick_source({"a": 7, "b": 5, "c": 7}, order)[0] == "a"
    src, why = pick_source({"a": 1, "b": 2}, ["a", "b"])
    assert src is None and "prefer" in why
    assert pick_source({"a": 1, "b": 2, "c": 3}, order)[0] is None
    assert pick_source({"a": 1, "b": 2}, ["a", "b"], prefer="b")[0] == "b"
    with pytest.raises(InvalidArgument):
        pick_source({"a": 1, "b": 2}, ["a", "b"], prefer="z")


def test_endpoints():
    for ok in ("10.0.0.2:10124", "node-1.example:1", "[::1]:10124"):
        assert validate.endpoint(ok) == ok
    for bad in ("10.0.0.2", "10.0.0.2:0", "10.0.0.2:70000", "a/b:1", ":1", "x:1\n", 5):
        with pytest.raises(InvalidArgument):
            validate.endpoint(bad)
