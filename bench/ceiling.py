"""The ceiling: a bare Flask endpoint that answers the success envelope.

Served by gunicorn with the same gunicorn.conf.py as the service, in the same
run, so every row of the benchmark is read as a fraction of what Flask on
gunicorn can do at all on this machine at that moment.
"""

from flask import Flask

from config import load_config

app = Flask(__name__)
# gunicorn.conf.py's post_worker_init reads the workarounds switches from the served app's settings.
app.config["SETTINGS"] = load_config()


@app.get("/")
def envelope():
    return {"code": 10000, "data": {}, "msg": "success"}
