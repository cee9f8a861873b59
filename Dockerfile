# preserve worker image: the pipeline, its tools (ffmpeg, MediaInfo, MediaConch) and the pinned
# Python packages (Prefect 3.8.8 with its working fastapi/SQLAlchemy pins). The same image runs the
# Prefect server, the scheduler and the workers in docker-compose.yml.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false PRESERVE_CONFIG=/etc/preserve/preserve.toml

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ffmpeg mediainfo mediaconch libimage-exiftool-perl \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/preserve
COPY pyproject.toml README.md ./
COPY src ./src
COPY flows ./flows
COPY config ./config
RUN pip install .

# never run as root; the ingest folder and replicas are volumes owned by this user
RUN useradd --system --create-home --uid 10001 preserve \
 && mkdir -p /srv/ingest /srv/replica /var/lib/preserve \
 && chown preserve: /srv/ingest /srv/replica /var/lib/preserve
USER preserve

ENTRYPOINT ["preserve"]
CMD ["watch"]
