"""BaseService: the plain persistence every service needs, for one model.

Services commit; models never do. A failed commit is rolled back before the error
goes on, so the request's session is clean for the error handler and the next request.
Locks, conditional updates and multi-step transactions stay in the services that need them.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select

from extensions import db

M = TypeVar("M", bound=db.Model)


def commit() -> None:
    """Commit the request's transaction, or roll it back and re-raise."""
    try:
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise


class BaseService(Generic[M]):
    """get / get_by / create / update / delete / paginate for one model."""

    def __init__(self, model: type[M]) -> None:
        self.model = model

    def get(self, ident: Any) -> M | None:
        return db.session.get(self.model, ident)

    def get_by(self, **filters: Any) -> M | None:
        return db.session.scalar(select(self.model).filter_by(**filters))

    def create(self, **values: Any) -> M:
        """Insert one row and commit; an IntegrityError (a unique key) reaches the caller, rolled back."""
        row = self.model(**values)
        db.session.add(row)
        commit()
        return row

    def update(self, row: M, **values: Any) -> M:
        for name, value in values.items():
            setattr(row, name, value)
        commit()
        return row

    def delete(self, row: M) -> None:
        db.session.delete(row)
        commit()

    def paginate(self, query: Select, page: int, page_size: int, *order_by: Any,
                 total: int | None = None) -> dict[str, Any]:
        """One page of query's rows in order_by order, with the total: {"items", "total", "page", "page_size"}.

        A caller that has counted the rows already passes total, and no count query is made.
        """
        if total is None:
            total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
        items = db.session.scalars(query.order_by(*order_by).limit(page_size).offset((page - 1) * page_size)).all()
        return {"items": items, "total": total, "page": page, "page_size": page_size}
