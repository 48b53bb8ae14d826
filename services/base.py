"""The ways to end a transaction, and the one way to read a page of rows.

Services commit; models and views never do. A failed commit is rolled back before the error
goes on, so the request's session is clean for the error handler and the next request.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import CursorResult, Executable, Select, func, select

from extensions import db


def commit() -> None:
    """Commit the request's transaction, or roll it back and re-raise."""
    try:
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise


def execute_alone(statement: Executable, params: dict[str, Any]) -> CursorResult:
    """Run one write in a transaction of its own, committed (rolled back if it fails), outside the
    request's session: for a write that nothing else joins, such as a new order's INSERT, where the
    session's bookkeeping around a statement and its commit cost more than the statement.

    The session first gives back any connection it holds (ending a read it began), so that a
    request never holds two of the pool's connections at once: with many requests at a time, each
    holding one and waiting for a second, the pool would run dry."""
    db.session.rollback()
    with db.engine.begin() as connection:
        return connection.execute(statement, params)


def paginate(query: Select, page: int, page_size: int, *order_by: Any, total: int | None = None) -> dict[str, Any]:
    """One page of query's rows in order_by order, with the total: {"items", "total", "page", "page_size"}.

    A caller that has counted the rows already passes total, and no count query is made.
    """
    if total is None:
        total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    items = db.session.scalars(query.order_by(*order_by).limit(page_size).offset((page - 1) * page_size)).all()
    return {"items": items, "total": total, "page": page, "page_size": page_size}
