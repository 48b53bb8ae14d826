from flask import Blueprint

bp = Blueprint("payment", __name__)
