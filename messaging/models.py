"""Data shapes of the messaging domain (no Dagster, no clients)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from resources.errors import PermanentError, PlatformError


class MessagingError(PlatformError):
    """Base of messaging's named errors."""


class InvalidPhone(MessagingError):
    """A recipient phone number is not a valid Korean mobile number."""


class MessageTooLong(MessagingError):
    """The rendered message exceeds its type's limit (it is an error, never cut)."""


class NotEncodable(MessagingError):
    """The message has characters outside EUC-KR (SOLAPI 1029)."""


class TableMappingError(MessagingError):
    """data/table-mappings.json is invalid; the message lists every problem."""


class WorkflowConfigError(MessagingError):
    """A workflow row (target/message/variables/trigger config) cannot be executed as written."""


class SendAmbiguous(MessagingError):
    """A send request failed without saying whether SOLAPI accepted it; reconcile by lookup."""


class ExecutionInProgress(MessagingError):
    """Another process is executing the same execution key right now (it holds the advisory
    lock)."""


class WebhookRejected(PermanentError):
    """A webhook request failed signature or freshness checks."""


@dataclass(frozen=True)
class FieldMapping:
    name: str
    display_name: str
    type: str
    filterable: bool = False
    searchable: bool = False


@dataclass(frozen=True)
class TableMapping:
    table: str
    display_name: str
    description: str
    fields: dict[str, FieldMapping]
    key_field: str = "id"
    phone_field: str | None = None
    name_field: str | None = None
    change_column: str | None = None
    enabled: bool = True

    @property
    def searchable_fields(self) -> list[str]:
        return [
            f.name
            for f in self.fields.values()
            if f.searchable or (f.filterable and f.type == "string")
        ]


@dataclass(frozen=True)
class Template:
    id: str
    name: str
    category: str | None
    message_type: str
    content: str
    template_code: str | None = None
    buttons: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class VariableSource:
    """Where a template variable's value comes from (workflow ``variables`` / individual
    mappings)."""

    name: str
    source_type: str  # column | static | query | function
    column: str | None = None  # column: target column; query: result column
    value: str | None = None  # static value
    query_template: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    function: str | None = None
    argument: str | None = None
    default: str | None = None


@dataclass(frozen=True)
class MatchReport:
    """Automatic matching of template variables: which were matched, which are unmapped."""

    matched: dict[str, VariableSource]
    unmapped: list[str]

    @property
    def complete(self) -> bool:
        return not self.unmapped

    @property
    def completeness(self) -> float:
        total = len(self.matched) + len(self.unmapped)
        return 1.0 if total == 0 else len(self.matched) / total


@dataclass
class RenderedMessage:
    """One recipient's outcome of rendering: either a sendable message or an error."""

    phone: str | None
    raw_phone: str
    name: str | None
    content: str
    variables: dict[str, str]
    message_type: str
    error_code: str | None = None
    error_message: str | None = None
    subject: str | None = None
    source_id: str | None = None  # the target row's key (for quarantine)

    @property
    def ok(self) -> bool:
        return self.error_code is None
