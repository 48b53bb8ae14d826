"""marshmallow's built-in messages, marked here so that Babel extracts them.

errors.handle_validation_error looks each message up in the catalog when it
renders a validation error, so a Chinese client sees them in Chinese too.
"""

from flask_babel import lazy_gettext as _l

BUILT_IN = (
    _l("Missing data for required field."),
    _l("Field may not be null."),
    _l("Invalid value."),
    _l("Unknown field."),
    _l("Invalid input type."),
    _l("Invalid type."),
    _l("Not a valid string."),
    _l("Not a valid utf-8 string."),
    _l("Not a valid integer."),
    _l("Not a valid number."),
    _l("Number too large."),
    _l("Not a valid boolean."),
    _l("Not a valid email address."),
    _l("Not a valid list."),
    _l("Not a valid mapping type."),
    _l("String does not match expected pattern."),
)
