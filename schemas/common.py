"""Validators with messages that Babel can translate, shared by every schema."""

from flask_babel import lazy_gettext as _l
from marshmallow import validate


def length(min: int | None = None, max: int | None = None) -> validate.Length:
    if min is not None and max is not None:
        return validate.Length(min=min, max=max, error=_l("Length must be between {min} and {max}."))
    if min is not None:
        return validate.Length(min=min, error=_l("Shorter than minimum length {min}."))
    return validate.Length(max=max, error=_l("Longer than maximum length {max}."))


def between(min: int, max: int) -> validate.Range:
    return validate.Range(min=min, max=max, error=_l("Must be between {min} and {max}."))


def one_of(choices: list[str]) -> validate.OneOf:
    return validate.OneOf(choices, error=_l("Must be one of: {choices}."))
