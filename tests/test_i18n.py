"""Every message a client can see exists in English and in Chinese."""

from pathlib import Path

import pytest
from flask_babel import force_locale

import codes
from schemas import messages


@pytest.mark.parametrize("name", sorted(codes.REGISTRY))
def test_every_registry_message_has_a_chinese_translation(app, name):
    code = codes.REGISTRY[name]
    with app.test_request_context():
        english = str(code.message)
        with force_locale("zh_Hans"):
            translated = str(code.message)
    assert translated and translated != english, f"{name} has no Chinese translation"
    assert translated.count("%(") == english.count("%("), f"{name}: placeholders differ"


@pytest.mark.parametrize("message", messages.BUILT_IN, ids=lambda message: str(message)[:30])
def test_every_marshmallow_message_has_a_chinese_translation(app, message):
    with app.test_request_context():
        with force_locale("en"):
            english = str(message)
        with force_locale("zh_Hans"):
            assert str(message) != english


def test_codes_are_unique_and_follow_the_numbering():
    numbers = [code.code for code in codes.REGISTRY.values()]
    assert len(numbers) == len(set(numbers))
    assert codes.SUCCESS.code == 10000 and codes.VALIDATION_ERROR.code == 10001
    assert codes.AUTH_INVALID_CREDENTIALS.code == 10006 and codes.USER_EMAIL_TAKEN.code == 10101
    assert codes.ORDER_NOT_FOUND.code == 20001


def test_the_readme_lists_every_code():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for name, code in codes.REGISTRY.items():
        assert f"| {code.code} | {code.status} | {name} |" in readme, f"README lacks {name}"
