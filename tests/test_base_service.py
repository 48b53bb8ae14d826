"""BaseService on the real database: what a service built on it can rely on."""

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from extensions import db
from models import UserModel
from services.base import BaseService

users = BaseService(UserModel)


def test_create_get_update_delete(app):
    with app.app_context():
        created = users.create(email="base@example.com", nickname="first")
        assert users.get(created.id).email == "base@example.com"
        users.update(created, nickname="second")
    with app.app_context():  # a fresh session reads what was committed
        assert users.get_by(email="base@example.com").nickname == "second"
        users.delete(users.get_by(email="base@example.com"))
        assert users.get_by(email="base@example.com") is None


def test_a_failed_commit_is_rolled_back_and_the_session_goes_on(app):
    with app.app_context():
        users.create(email="taken@example.com")
        with pytest.raises(IntegrityError):
            users.create(email="taken@example.com")
        assert users.create(email="other@example.com").id  # the session is usable again
        emails = db.session.scalars(select(UserModel.email).order_by(UserModel.id)).all()
    assert emails == ["taken@example.com", "other@example.com"]


def test_paginate_counts_every_row_and_pages_in_order(app):
    with app.app_context():
        for number in range(7):
            users.create(email=f"page{number}@example.com")
        query = select(UserModel).where(UserModel.email.like("page%"))
        first = users.paginate(query, 1, 3, UserModel.id.desc())
        last = users.paginate(query, 3, 3, UserModel.id.desc())
    assert first["total"] == last["total"] == 7
    assert [u.email for u in first["items"]] == ["page6@example.com", "page5@example.com", "page4@example.com"]
    assert [u.email for u in last["items"]] == ["page0@example.com"]
    assert (last["page"], last["page_size"]) == (3, 3)
