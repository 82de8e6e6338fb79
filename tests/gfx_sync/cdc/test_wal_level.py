"""A source whose wal_level is not logical is refused with the fix named."""

import pytest

from gfx_sync.cdc.errors import WalLevelNotLogical
from gfx_sync.cdc.slot import require_logical

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("level", ["replica", "minimal"])
def test_wal_level_other_than_logical_is_refused(level):
    with pytest.raises(
        WalLevelNotLogical, match=f"wal_level is '{level}'.*ALTER SYSTEM SET wal_level = logical"
    ):
        require_logical(level)
