# Chatsite in a container: the entry point `./run` serves with (python -m chatsite.launcher),
# its SQLite database and the images users attach on the /data volume, and Redis from outside (REDIS_URL; compose.yaml
# starts one). See docs/deploy.md; tests/chatsite/test_deploy_files.py checks that this
# file, compose.yaml and the README name the same command, port and settings.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    API_HOST=0.0.0.0 \
    API_PORT=8000 \
    SQLITE_PATH=/data/db.sqlite3 \
    MEDIA_ROOT=/data/media \
    CHATSITE_LOCAL_MODEL=off

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN useradd --system --home-dir /app chatsite && mkdir -p /data && chown chatsite /data
USER chatsite
VOLUME /data
EXPOSE 8000

# 200 once the database and Redis answer (a provider that is down is "degraded", still 200).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
  CMD ["python", "-m", "chatsite.healthcheck"]

# SIGTERM: new replies get 503, running ones finish for CHATSITE_DRAIN_SECONDS (20).
STOPSIGNAL SIGTERM
CMD ["python", "-m", "chatsite.launcher"]
