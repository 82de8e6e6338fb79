"""Read-only guard for the operational MySQL: only one plain SELECT gets through.

The check parses the statement with sqlglot (MySQL dialect) rather than matching keywords,
so comments, string literals and odd spacing neither hide a write nor cause a false alarm.
The database user is SELECT-only as well; this guard is the first of two locks.
"""

from __future__ import annotations

import logging
import re

import sqlglot
from sqlglot import TokenType, exp
from sqlglot.errors import ParseError, TokenError

from resources.errors import ReadOnlyViolation

# Functions that have side effects, hold the server, or read its files.
FORBIDDEN_FUNCTIONS = frozenset(
    {
        "SLEEP",
        "BENCHMARK",
        "GET_LOCK",
        "RELEASE_LOCK",
        "RELEASE_ALL_LOCKS",
        "IS_FREE_LOCK",
        "IS_USED_LOCK",
        "LOAD_FILE",
        "MASTER_POS_WAIT",
        "SOURCE_POS_WAIT",
        "WAIT_FOR_EXECUTED_GTID_SET",
        "WAIT_UNTIL_SQL_THREAD_AFTER_GTIDS",
        "NAME_CONST",
        "SYS_EXEC",
        "SYS_EVAL",
    }
)

# sqlglot logs a warning when it falls back to a generic Command; the guard reports it instead.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

_EXECUTABLE_COMMENT = re.compile(r"/\*(!|M!)")
_NAMED_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
_POSITIONAL_PLACEHOLDER = re.compile(r"%s")


def _for_parsing(query: str) -> str:
    """Swap DB-API placeholders (``%s``, ``%(name)s``) for ones sqlglot parses."""
    query = _NAMED_PLACEHOLDER.sub(lambda m: f":{m.group(1)}", query)
    query = _POSITIONAL_PLACEHOLDER.sub("?", query)
    return query.replace("%%", "%")


def check_read_only(query: str) -> exp.Expression:
    """Accept exactly one side-effect-free SELECT (or UNION / WITH of SELECTs).

    Args:
        query: the SQL, with parameters as ``%s`` or ``%(name)s`` placeholders (never inlined).

    Returns:
        The parsed statement.

    Raises:
        ReadOnlyViolation: with ``reason`` naming what is not allowed.
    """
    if not query or not query.strip():
        raise ReadOnlyViolation("empty query", query)
    if _EXECUTABLE_COMMENT.search(query):
        # MySQL/MariaDB run the text inside /*! ... */ and /*M! ... */: a parser sees a comment.
        raise ReadOnlyViolation("executable comments (/*! ... */) are not allowed", query)
    text = _for_parsing(query)
    _check_tokens(query, text)
    try:
        statements = [s for s in sqlglot.parse(text, read="mysql") if s is not None]
    except ParseError as exc:
        first = str(exc).splitlines()[0]
        raise ReadOnlyViolation(f"syntax error: {first}", query) from exc
    if len(statements) != 1:
        raise ReadOnlyViolation(f"exactly one statement is allowed, got {len(statements)}", query)
    stmt = statements[0]
    if not isinstance(stmt, (exp.Select, exp.Union, exp.Intersect, exp.Except)):
        kind = type(stmt).__name__.upper()
        if isinstance(stmt, exp.Command):
            kind = str(stmt.this).upper()
        raise ReadOnlyViolation(f"only SELECT is allowed, got {kind}", query)
    for node in stmt.walk():
        _check_node(node, query)
    return stmt


def _check_tokens(query: str, text: str) -> None:
    """The statement starts with SELECT / WITH and has no ``INTO`` (checked before parsing, so
    a write that sqlglot cannot parse is still named)."""
    try:
        tokens = sqlglot.Dialect.get_or_raise("mysql").tokenize(text)
    except TokenError as exc:
        raise ReadOnlyViolation(f"cannot tokenize SQL: {exc}", query) from exc
    kinds = [t.token_type for t in tokens]
    leading = next((t for t in tokens if t.token_type != TokenType.L_PAREN), None)
    if leading is None:
        raise ReadOnlyViolation("empty query", query)
    if leading.token_type not in (TokenType.SELECT, TokenType.WITH):
        raise ReadOnlyViolation(f"only SELECT is allowed, got {leading.text.upper()}", query)
    if TokenType.INTO in kinds:
        # SELECT ... INTO OUTFILE / DUMPFILE / @var writes files or session state.
        nxt = [t.text.upper() for t in tokens[kinds.index(TokenType.INTO) + 1 :][:1]]
        target = nxt[0] if nxt else ""
        what = (
            "INTO OUTFILE"
            if target == "OUTFILE"
            else "INTO DUMPFILE"
            if target == "DUMPFILE"
            else "SELECT ... INTO"
        )
        raise ReadOnlyViolation(f"{what} is not allowed (writes outside the result set)", query)


def _check_node(node: exp.Expr, query: str) -> None:
    """No locking read, no INTO, no nested write, no forbidden function anywhere in the tree."""
    if isinstance(node, exp.Lock):
        raise ReadOnlyViolation(
            "locking reads (FOR UPDATE / FOR SHARE / LOCK IN SHARE MODE) are not allowed", query
        )
    if isinstance(node, exp.Into):
        raise ReadOnlyViolation("SELECT ... INTO is not allowed", query)
    if isinstance(
        node, (exp.Insert, exp.Update, exp.Delete, exp.Create, exp.Drop, exp.Alter, exp.Command)
    ):
        raise ReadOnlyViolation(
            f"{type(node).__name__.upper()} inside a SELECT is not allowed", query
        )
    if isinstance(node, exp.Func):
        name = (
            (node.sql_name() if not isinstance(node, exp.Anonymous) else str(node.this))
            .strip('`"')
            .upper()
        )
        if name in FORBIDDEN_FUNCTIONS:
            raise ReadOnlyViolation(f"function {name}() is not allowed", query)
