"""Validators with messages that Babel can translate, and fields shared by every schema."""

import re
from typing import Any

from flask_babel import lazy_gettext as _l
from marshmallow import fields, validate


def length(min: int | None = None, max: int | None = None) -> validate.Length:
    if min is not None and max is not None:
        return validate.Length(min=min, max=max, error=_l("Length must be between {min} and {max}."))
    if min is not None:
        return validate.Length(min=min, error=_l("Shorter than minimum length {min}."))
    return validate.Length(max=max, error=_l("Longer than maximum length {max}."))


def between(min: int, max: int) -> validate.Range:
    return validate.Range(min=min, max=max, error=_l("Must be between {min} and {max}."))


def six_digits() -> validate.Regexp:
    """An emailed code, or an authenticator app's."""
    return validate.Regexp(r"^[0-9]{6}$", error=_l("Enter the 6-digit code."))


def one_of(choices: list[str]) -> validate.OneOf:
    return validate.OneOf(choices, error=_l("Must be one of: {choices}."))


class Timestamp(fields.DateTime):
    """ISO 8601 out; accepts a datetime or the ISO text already cached in Redis."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if isinstance(value, str):
            return value
        return super()._serialize(value, attr, obj, **kwargs)


class StrictBoolean(fields.Boolean):
    """Only JSON true or false: 0, 1 and "yes" are refused, as the document says."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


WHOLE_TEXT = re.compile(r"[+-]?[0-9]+(\.0*)?")


class WholeNumber(fields.Integer):
    """An integer as JSON Schema 2020-12 (OpenAPI 3.1) has it: 37 and 37.0 are one number, 37.5 is
    none, and neither is true; in a query string "1" and "1.0" alike. marshmallow's own either
    refuses 37.0 (strict) or cuts 37.5 to 37. Text ("2") only where everything is text: a query
    string (in_query=True); a JSON body's "2" is a string."""

    def __init__(self, *, in_query: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.in_query = in_query

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if self.in_query and isinstance(value, str) and WHOLE_TEXT.fullmatch(value):
            value = int(value.split(".")[0])
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid")
        if isinstance(value, float) and not value.is_integer():
            raise self.make_error("invalid")
        return super()._deserialize(int(value), attr, data, **kwargs)


class Dumped:
    """A result already in the form its response schema gives (read back from a cache):
    api.response sends it as it is instead of dumping it again."""

    __slots__ = ("data",)

    def __init__(self, data: Any) -> None:
        self.data = data
