"""A developer opens /api/docs in a browser with no internet: Swagger UI renders the live OpenAPI
document, lists every operation, and "Try it out" calls the API."""

from __future__ import annotations

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.live import Gunicorn, OfflineBrowser

pytestmark = pytest.mark.live


def operation_ids(server: Gunicorn) -> set[str]:
    document = requests.get(server.url + "/api/openapi.json", timeout=10).json()
    return {operation["operationId"] for path in document["paths"].values() for operation in path.values()}


def test_the_docs_page_lists_every_operation_and_tries_out_health_offline(app, browser: OfflineBrowser, page: Page):
    with Gunicorn(workers=1) as server:
        expected = operation_ids(server)
        page.goto(server.url + "/api/docs")
        # Either the operations or Swagger UI's own complaint (an OpenAPI version it cannot read).
        page.locator(".opblock, .version-pragma, .errors-wrapper").first.wait_for(timeout=30_000)
        complaint = page.locator(".version-pragma, .errors-wrapper")
        assert complaint.count() == 0, complaint.all_inner_texts()
        expect(page.locator(".opblock")).to_have_count(len(expected))
        assert set(page.locator(".opblock-summary-operation-id").all_inner_texts()) == expected

        health = page.locator(".opblock-get", has=page.locator('[data-path="/api/system/health"]'))
        health.locator(".opblock-summary").click()
        health.get_by_role("button", name="Try it out").click()
        health.get_by_role("button", name="Execute").click()
        expect(health.locator(".live-responses-table .response .response-col_status")).to_have_text("200")

    assert browser.refused == []  # nothing on the page asked for the internet
