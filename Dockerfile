# The service as an image: gunicorn on port 8000 as an unprivileged user, against the MariaDB and
# Redis that compose.yaml runs beside it (docs/deploying.md). No Docker engine runs where this
# project is tested: scripts/container_steps.py runs these same RUN and CMD lines and this
# HEALTHCHECK in a fresh virtualenv from a clean copy of the tree (make test does), so keep each
# step a plain command it can run, and use only the instructions it knows.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GUNICORN_BIND=0.0.0.0:8000

RUN useradd --system --no-create-home --shell /usr/sbin/nologin app

WORKDIR /app
# The requirements alone first: a change to the code then reuses the installed layer.
COPY requirements.txt ./
RUN pip install -r requirements.txt
COPY . ./
# The catalogs are build output, not in git: compiled here, as root, since the app user cannot write /app.
RUN pybabel compile -d translations

USER app
EXPOSE 8000
# python:3.11-slim has no curl: the check is a few lines of standard-library Python.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["python", "scripts/healthcheck.py"]
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
