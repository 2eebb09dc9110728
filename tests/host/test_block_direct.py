"""Direct (page-cache bypassing) block I/O: misaligned requests are refused before any file is opened."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mayastor.kernel import block

U64 = st.integers(min_value=0, max_value=2**64 - 1)


@given(offset=U64, length=U64)
def test_misaligned_reads_are_refused_before_opening(tmp_path_factory, offset, length):
    if offset % block.DIRECT_ALIGN == 0 and length % block.DIRECT_ALIGN == 0 and length > 0:
        return
    with pytest.raises(ValueError, match="aligned"):
        block.read_direct("/nonexistent/dev", offset, length)


@given(offset=U64, size=st.integers(min_value=0, max_value=8192))
def test_misaligned_writes_are_refused_before_opening(tmp_path_factory, offset, size):
    target = tmp_path_factory.mktemp("direct") / "dev"
    if offset % block.DIRECT_ALIGN == 0 and size % block.DIRECT_ALIGN == 0 and size > 0:
        return
    with pytest.raises(ValueError, match="aligned"):
        block.write_direct(str(target), offset, bytes(size))
    assert not target.exists()
