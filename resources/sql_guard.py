"""Read-only guard for the operational MySQL: only one plain SELECT gets through.

The check parses the statement with sqlglot (MySQL dialect) rather than matching keywords,
so comments, string literals and odd spacing neither hide a write nor cause a false alarm.
The database user is SELECT-only as well; this guard is the first of two locks.
"""

from __future__ import annotations

import functools
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
# Schemas a targeting query never reads; information_schema only through the catalog's own
# inspector (SQLAlchemy's queries), never through a user-written SELECT.
SYSTEM_SCHEMAS = frozenset({"mysql", "performance_schema", "sys", "information_schema"})
# Optimizer hints that would lift the server-side time limit the resource sets.
TIME_LIMIT_HINTS = ("MAX_EXECUTION_TIME", "SET_VAR")
_PLACEHOLDER = re.compile(r"%\(\w+\)s|%s")
_NAMED_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
_POSITIONAL_PLACEHOLDER = re.compile(r"%s")


def _for_parsing(query: str) -> str:
    """Swap DB-API placeholders (``%s``, ``%(name)s``) for ones sqlglot parses."""
    query = _NAMED_PLACEHOLDER.sub(lambda m: f":{m.group(1)}", query)
    query = _POSITIONAL_PLACEHOLDER.sub("?", query)
    return query.replace("%%", "%")


def check_read_only(query: str) -> exp.Expression:
    """Accept exactly one side-effect-free SELECT (see ``_check``) and return its parsed tree
    (a copy the caller may change).

    Raises:
        ReadOnlyViolation: with ``reason`` naming what is not allowed.
    """
    return _check(query).copy()


def ensure_read_only(query: str) -> None:
    """``check_read_only`` without the tree: the verdict on an accepted text is cached (a query
    variable runs the same SELECT once per batch or recipient).

    Raises:
        ReadOnlyViolation: with ``reason`` naming what is not allowed.
    """
    _check(query)


@functools.lru_cache(maxsize=2048)
def _check(query: str) -> exp.Expression:
    """Accept exactly one side-effect-free SELECT (or UNION / WITH of SELECTs) that reads no
    system schema, sets no variable, keeps the time limit and has no placeholder in a comment.

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
    _check_comments(query)
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


def comments(query: str) -> list[str]:
    """The text of every comment (``-- ``, ``#``, ``/* */``) outside string literals and quoted
    identifiers, as MySQL reads them (backslash escapes inside strings)."""
    found: list[str] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        if ch in "'\"`":
            i += 1
            while i < n and query[i] != ch:
                i += 2 if query[i] == "\\" and ch != "`" else 1
            i += 1
        elif ch == "#" or (query.startswith("--", i) and (i + 2 >= n or query[i + 2].isspace())):
            end = query.find("\n", i)
            end = n if end < 0 else end
            found.append(query[i:end])
            i = end
        elif query.startswith("/*", i):
            end = query.find("*/", i + 2)
            end = n if end < 0 else end + 2
            found.append(query[i:end])
            i = end
        else:
            i += 1
    return found


def _check_comments(query: str) -> None:
    """No placeholder inside a comment (the driver would substitute a quoted value there, and a
    ``*/`` inside that value ends the comment), no hint that changes the time limit."""
    for comment in comments(query):
        if _PLACEHOLDER.search(comment):
            raise ReadOnlyViolation(
                "placeholder inside a comment: parameters are bound only outside comments", query
            )
        if comment.startswith("/*+"):
            _check_hint(comment, query)


def _check_hint(hint: str, query: str) -> None:
    upper = hint.upper()
    for name in TIME_LIMIT_HINTS:
        if name in upper:
            raise ReadOnlyViolation(
                f"optimizer hint {name} is not allowed (it changes the statement time limit)",
                query,
            )


def _check_tokens(query: str, text: str) -> None:
    """The statement starts with SELECT / WITH and has no ``INTO`` (checked before parsing, so
    a write that sqlglot cannot parse is still named)."""
    try:
        tokens = sqlglot.Dialect.get_or_raise("mysql").tokenize(text)
    except TokenError as exc:
        raise ReadOnlyViolation(f"cannot tokenize SQL: {exc}", query) from exc
    kinds = [t.token_type for t in tokens]
    for token in tokens:
        if token.token_type == TokenType.HINT:
            _check_hint(token.text, query)
    if TokenType.COLON_EQ in kinds:
        raise ReadOnlyViolation("variable assignment (@var := ...) is not allowed", query)
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
    if isinstance(node, exp.Table):
        for part in (node.args.get("db"), node.args.get("catalog")):
            schema = part.name.lower() if isinstance(part, exp.Identifier) else ""
            if schema in SYSTEM_SCHEMAS:
                raise ReadOnlyViolation(
                    f"system schema {schema} is not readable (schema discovery goes through "
                    "the catalog)",
                    query,
                )
    if isinstance(node, exp.PropertyEQ):
        raise ReadOnlyViolation("variable assignment (@var := ...) is not allowed", query)
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
