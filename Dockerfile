# One image for every consumer group and the topic set-up: `docker compose` picks the command.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY vvv_core ./vvv_core
RUN pip install --no-cache-dir ".[consumers]" && useradd --uid 10001 --no-create-home vvv
# The Avro schemas are package data, installed with the package.
ENV PYTHONUNBUFFERED=1
USER vvv
ENTRYPOINT ["vvv"]
CMD ["--help"]
