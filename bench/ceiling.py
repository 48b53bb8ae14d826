"""The ceiling: a bare Flask endpoint that answers the success envelope.

Served by gunicorn with the same gunicorn.conf.py as the service, in the same
run, so every row of the benchmark is read as a fraction of what Flask on
gunicorn can do at all on this machine at that moment.
"""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def envelope():
    return {"code": 10000, "data": {}, "msg": "success"}
