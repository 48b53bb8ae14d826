"""services.base on the real database: what every service's commit and page can rely on."""

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from extensions import db
from models import UserModel
from services.base import commit, paginate


def create(**values):
    user = UserModel(**values)
    db.session.add(user)
    commit()
    return user


def test_what_is_committed_is_there_for_the_next_session(app):
    with app.app_context():
        created = create(email="base@example.com", nickname="first")
        created.nickname = "second"
        commit()
        user_id = created.id
    with app.app_context():  # a fresh session reads what was committed
        assert db.session.get(UserModel, user_id).nickname == "second"


def test_a_failed_commit_is_rolled_back_and_the_session_goes_on(app):
    with app.app_context():
        create(email="taken@example.com")
        with pytest.raises(IntegrityError):
            create(email="taken@example.com")
        assert create(email="other@example.com").id  # the session is usable again
        emails = db.session.scalars(select(UserModel.email).order_by(UserModel.id)).all()
    assert emails == ["taken@example.com", "other@example.com"]


def test_paginate_counts_every_row_and_pages_in_order(app):
    with app.app_context():
        for number in range(7):
            create(email=f"page{number}@example.com")
        query = select(UserModel).where(UserModel.email.like("page%"))
        first = paginate(query, 1, 3, UserModel.id.desc())
        last = paginate(query, 3, 3, UserModel.id.desc())
    assert first["total"] == last["total"] == 7
    assert [u.email for u in first["items"]] == ["page6@example.com", "page5@example.com", "page4@example.com"]
    assert [u.email for u in last["items"]] == ["page0@example.com"]
    assert (last["page"], last["page_size"]) == (3, 3)
