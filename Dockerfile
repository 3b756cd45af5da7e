# One image for every consumer group, the sink, the console and the topic set-up: `docker compose` picks
# the command. It runs as uid 10001, gid 10001 (vvv); the cron's data directory, bind-mounted at /data,
# must be readable and writable by it or by a group it is given (group_add, VIRALVIDVAULT_CRON_GID).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY vvv_core ./vvv_core
COPY deploy/docker/start.sh /usr/local/bin/vvv-start
# gcc for the compiled Avro codec (vvv_core/_avro.c), built by the install below.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
# The Avro schemas are package data, installed with the package.
RUN pip install --no-cache-dir ".[consumers,console]" \
    && groupadd --gid 10001 vvv && useradd --uid 10001 --gid 10001 --no-create-home vvv
ENV PYTHONUNBUFFERED=1
USER 10001:10001
# Checks the database named with --db as this user sees it (one line when it cannot), then runs vvv.
ENTRYPOINT ["vvv-start"]
CMD ["--help"]
