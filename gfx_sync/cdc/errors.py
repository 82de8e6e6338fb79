"""Named CDC errors: each message says what is wrong and what to do about it."""

from __future__ import annotations

from resources.errors import PlatformError


class CdcError(PlatformError):
    """Base of the CDC errors."""


class WalLevelNotLogical(CdcError):
    """The source runs with wal_level other than 'logical'."""


class MissingReplicaIdentity(CdcError):
    """A published table has no primary key / replica identity, so updates and deletes cannot be
    replicated."""


class ReplicationPermissionError(CdcError):
    """The source user may not create or read replication slots."""


class SlotInvalidated(CdcError):
    """The slot lost WAL it still needed (wal_status 'lost'); a resnapshot is required."""


class SlotStateMismatch(CdcError):
    """The slot and the applied position on the target disagree (e.g. slot recreated without a
    snapshot)."""


class SchemaDriftError(CdcError):
    """A Relation message shows a column the target lacks, or a changed type, and the policy is
    'stop'."""


class SlotBusy(CdcError):
    """Another consumer (the streaming worker or a drain run) holds the slot right now."""


class TargetBehindSlot(SlotStateMismatch):
    """The target's applied position is behind what the slot already confirmed (a restored
    Supabase, a lost state row): changes in between are gone from the slot. Resnapshot the
    affected tables (``python -m gfx_sync.cdc resnapshot --tables …``)."""


class SlotLeaseHeld(SlotBusy):
    """Another reader (the worker or a drain run) holds the slot's lease on the target."""
