"""Persistence: flask-sqlalchemy models and their state rules. No commits here."""

from models.user import UserModel

__all__ = ["UserModel"]
