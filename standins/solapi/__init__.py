"""Local stand-in for SOLAPI's messages v4 API (the current CoolSMS API).

Follows the documented shapes and limits:

- ``Authorization: HMAC-SHA256 apiKey=…, date=…, salt=…, signature=…`` where the signature is
  ``hex(HMAC_SHA256(secret, date+salt))``; 403 ``InvalidAPIKey`` / ``SignatureDoesNotMatch`` /
  ``RequestTimeTooSkewed`` (±15 min) / ``DuplicatedSignature`` (same signature within 15 min).
- ``POST /messages/v4/send-many/detail``: at most 10,000 messages and 15 MB (413 above) (``to``
  may be an array: one message per recipient); HTTP 200 even when some failed
  (``failedMessageList``, each with ``country`` and ``accountId``); ``groupInfo`` in the full
  documented group shape (``count``, ``countForCharge``, ``balance``, ``point``, ``app``,
  ``log``, ``price``, ...: what the ``solapi`` SDK's ``GroupMessageResponse`` requires);
  ``messageList`` only with ``showMessageList: true`` (SOLAPI's default is false). Without
  ``type``, ``autoTypeDetect`` (default true) picks ATA (``kakaoOptions``), MMS (``imageId``),
  SMS (<= 90 bytes) or LMS.
- ``GET /messages/v4/list`` (and ``list-old``, the SDK's): by ``messageId``/``messageIds``/
  ``groupId``/``to``/``from``/``type``/``statusCode`` and a date range (``dateType``
  CREATED/UPDATED), ``startKey``/``limit`` paging; ``messageList`` keyed by message id. Messages
  refused at registration are listed too, with their status code.
- ``GET /messages/v4/groups``, ``GET /messages/v4/groups/{groupId}``,
  ``GET /messages/v4/groups/{groupId}/messages``, ``GET /cash/v1/balance``.
- The group flow (``groups.py``): ``POST /messages/v4/groups`` (create, ``PENDING``),
  ``PUT …/groups/{id}/messages`` (add: <= 10,000 per request, <= 15 MB, <= 1,000,000 per group,
  ``resultList`` in request order), ``POST …/groups/{id}/send`` (once: a sent or deleted group is
  refused with 400), ``DELETE …/groups/{id}`` (``DELETED``, never sendable).

Message checks: SMS ≤ 90 bytes / LMS ≤ 2,000 bytes in EUC-KR (1029 for characters outside
EUC-KR), registered sender (1062), duplicate recipient in one request (1026), LMS/MMS subject
<= 40 bytes (1013), Alimtalk needs ``pfId`` and ``templateId`` (1042). Delivery: accepted
messages are 2000, then 3000 (handed to carrier) and, ``delivery_delay_s`` after acceptance,
4000 delivered or a carrier failure. Stand-in convention: recipients ending in ``4444`` fail at
the carrier (3040), numbers in ``StandInState.rejected`` are refused at registration (1022).
Faults: the shared injector (latency, errors, 429, downtime) plus ``lose_responses`` (process the
send, then answer 503: the ambiguous failure exactly-once must survive), ``hold_sends``/``hold_s``
(a send processed only after the hold, when the client has timed out) and ``list_lag_s`` (the
message lists show a message only that long after it was registered or sent).

State is configured, not seeded: ``default_state`` accepts the local contract credentials.
"""

from standins.solapi.app import build, create_app, create_solapi_app
from standins.solapi.auth import AUTH_RE, CLOCK_SKEW, check_auth
from standins.solapi.errors import error_body, error_response
from standins.solapi.messages import detect_type, status_now, validate
from standins.solapi.send import send_many
from standins.solapi.state import (
    ACCOUNT_ID,
    MAX_MESSAGES_PER_REQUEST,
    MAX_REQUEST_BYTES,
    SUBJECT_MAX_BYTES,
    TYPE_LIMITS,
    StandInState,
    default_state,
    group_document,
)

__all__ = [
    "ACCOUNT_ID",
    "AUTH_RE",
    "CLOCK_SKEW",
    "MAX_MESSAGES_PER_REQUEST",
    "MAX_REQUEST_BYTES",
    "SUBJECT_MAX_BYTES",
    "TYPE_LIMITS",
    "StandInState",
    "build",
    "check_auth",
    "create_app",
    "create_solapi_app",
    "default_state",
    "detect_type",
    "error_body",
    "error_response",
    "group_document",
    "send_many",
    "status_now",
    "validate",
]
