"""flask sync-schema: create what is missing, report what differs, drop nothing."""

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from extensions import db
from tests.helpers import TEST_DB_URL, drop_database, recreate_database

SCRATCH_URL = make_url(TEST_DB_URL).set(database=make_url(TEST_DB_URL).database + "_sync").render_as_string(
    hide_password=False)


@pytest.fixture
def scratch(make_app):
    engine = create_engine(make_url(SCRATCH_URL).set(database=""))
    with engine.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{make_url(SCRATCH_URL).database}`"))
    app = make_app(database__url=SCRATCH_URL)
    yield app
    with app.app_context():
        db.engine.dispose()
    with engine.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{make_url(SCRATCH_URL).database}`"))
    engine.dispose()


def tables(app):
    with app.app_context():
        return set(inspect(db.engine).get_table_names())


def columns(app, table):
    with app.app_context():
        return {c["name"] for c in inspect(db.engine).get_columns(table)}


def test_on_a_missing_database_it_creates_the_database_and_every_table(scratch):
    result = scratch.test_cli_runner().invoke(args=["sync-schema", "--yes"])
    assert result.exit_code == 0, result.output
    assert "Created database" in result.output
    assert "create table users" in result.output
    assert {table.name for table in db.metadata.sorted_tables} <= tables(scratch)


def test_a_missing_column_is_added_and_other_data_kept(scratch):
    runner = scratch.test_cli_runner()
    runner.invoke(args=["sync-schema", "--yes"])
    with scratch.app_context(), db.engine.begin() as conn:
        conn.execute(text("ALTER TABLE users DROP COLUMN nickname"))
        conn.execute(text("ALTER TABLE users ADD COLUMN legacy_note VARCHAR(20) NULL"))
        conn.execute(text("INSERT INTO users (email, login_count, created_at, updated_at)"
                          " VALUES ('kept@example.com', 0, NOW(), NOW())"))
    result = runner.invoke(args=["sync-schema", "--yes"])
    assert result.exit_code == 0, result.output
    assert "add column users.nickname" in result.output
    assert "column users.legacy_note is only in the database" in result.output
    assert {"nickname", "legacy_note"} <= columns(scratch, "users")
    with scratch.app_context(), db.engine.connect() as conn:
        assert conn.execute(text("SELECT email FROM users")).scalars().all() == ["kept@example.com"]


def collations(app, table):
    with app.app_context(), db.engine.connect() as conn:
        rows = conn.execute(text("SELECT column_name, collation_name FROM information_schema.columns"
                                 " WHERE table_schema = DATABASE() AND table_name = :table"), {"table": table})
        return dict(rows.all())


def test_identifiers_are_created_case_sensitive_and_an_older_database_is_reported_not_changed(scratch):
    runner = scratch.test_cli_runner()
    runner.invoke(args=["sync-schema", "--yes"])
    assert collations(scratch, "orders")["idempotency_key"] == "utf8mb4_bin"
    assert collations(scratch, "payments")["transaction_id"] == "utf8mb4_bin"
    assert collations(scratch, "orders")["subject"] == "utf8mb4_unicode_ci"  # text for people keeps the default
    with scratch.app_context(), db.engine.begin() as conn:  # as a database made before they were binary
        conn.execute(text("ALTER TABLE orders MODIFY idempotency_key VARCHAR(64) COLLATE utf8mb4_unicode_ci NULL"))
    result = runner.invoke(args=["sync-schema", "--yes"])
    assert result.exit_code == 0, result.output
    assert ("leave alone: modify_collation orders.idempotency_key: database 'utf8mb4_unicode_ci',"
            " model 'utf8mb4_bin'") in result.output
    assert "Schema is up to date." in result.output
    assert collations(scratch, "orders")["idempotency_key"] == "utf8mb4_unicode_ci"


def test_an_up_to_date_schema_is_left_alone(scratch):
    runner = scratch.test_cli_runner()
    runner.invoke(args=["sync-schema", "--yes"])
    result = runner.invoke(args=["sync-schema", "--yes"])
    assert result.exit_code == 0
    assert "Schema is up to date." in result.output
    assert "Plan:" not in result.output


def test_without_yes_it_asks_and_a_no_changes_nothing(scratch):
    result = scratch.test_cli_runner().invoke(args=["sync-schema"], input="n\n")
    assert "Apply these changes?" in result.output
    assert result.exit_code != 0
    assert tables(scratch) == set()


def test_recreate_helper_leaves_an_empty_database():
    recreate_database(SCRATCH_URL)
    engine = create_engine(SCRATCH_URL)
    try:
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()
        drop_database(SCRATCH_URL)  # no fixture made it, so none drops it
