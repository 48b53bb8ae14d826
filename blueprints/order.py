from flask import Blueprint

bp = Blueprint("order", __name__)
