"""All configuration in one typed object, read once from the environment (and CLI flags).

Kafka client settings pass through untouched: ``KAFKA_SECURITY_PROTOCOL=SASL_SSL`` becomes
librdkafka's ``security.protocol``; ``vvv -X key=value`` does the same on the command line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_THUMBNAIL_HOSTS = (
    "i.ytimg.com",
    "img.youtube.com",
    "i1.ytimg.com",
    "i2.ytimg.com",
    "i3.ytimg.com",
    "i4.ytimg.com",
    "i9.ytimg.com",
)


class ConfigError(ValueError):
    """A setting that cannot be used; the message names it."""


def _env_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    value = _env_float(env, name, default)
    if value != int(value):
        raise ConfigError(f"{name}={env[name]!r} is not a whole number")
    return int(value)


def kafka_overrides_from_env(env: Mapping[str, str]) -> dict[str, str]:
    """``KAFKA_FOO_BAR=x`` -> ``{"foo.bar": "x"}`` for every KAFKA_* variable but the bootstrap one."""
    return {
        name[len("KAFKA_") :].lower().replace("_", "."): value
        for name, value in env.items()
        if name.startswith("KAFKA_") and name != "KAFKA_BOOTSTRAP_SERVERS"
    }


@dataclass(frozen=True)
class Settings:
    bootstrap: str = DEFAULT_BOOTSTRAP
    kafka: Mapping[str, str] = field(default_factory=dict, hash=False)  # librdkafka settings, passed through
    namespace: str = "vvv"  # prefixes every topic and consumer group; tests use a fresh one each
    partitions: int = 6
    replication_factor: int = 1
    topic_videos: str = ""  # empty: "<namespace>.videos"; see the properties below
    topic_stale: str = ""
    topic_results: str = ""
    hook_timeout: float = 2.0  # seconds the hook may add to the cron when the broker is slow or down
    batch_size: int = 2000  # messages taken per poll
    stop_timeout: float = 10.0  # seconds a graceful stop may take
    time_limit: float = 120.0  # seconds one attempt at one event may run before it is abandoned
    max_in_flight: int = 10_000  # unfinished events per process before fetching pauses
    dlq_max_ratio: float = 0.5  # dead-lettered share of recent events that stops a consumer
    max_message_bytes: int = 16 * 1024 * 1024  # the largest dead letter kept whole (topic and producer limit)
    exactly_once: bool = False  # results, dead letters and offsets in one Kafka transaction per batch
    metrics_port: int = 0  # serve /metrics, /healthz and /readyz here; 0: off
    stale_hours: float = 48.0
    # thumbnails
    thumbnail_hosts: tuple[str, ...] = DEFAULT_THUMBNAIL_HOSTS  # VVV_THUMBNAIL_HOSTS replaces it
    thumbnail_timeout: float = 8.0
    thumbnail_attempts: int = 3
    thumbnail_retry_delay: float = 30.0
    thumbnail_max_bytes: int = 5_000_000
    thumbnail_concurrency: int = 64
    # liveness
    oembed_url: str = "https://www.youtube.com/oembed"
    liveness_timeout: float = 8.0
    liveness_attempts: int = 3
    liveness_retry_delay: float = 60.0
    liveness_rate: float = 20.0  # requests per minute for the whole group
    liveness_concurrency: int = 8

    def __post_init__(self) -> None:
        if self.partitions < 1 or self.batch_size < 1 or self.hook_timeout <= 0:
            raise ConfigError("VVV_PARTITIONS, VVV_BATCH_SIZE and VVV_HOOK_TIMEOUT must be positive")
        if self.thumbnail_attempts < 1 or self.liveness_attempts < 1 or self.liveness_rate <= 0:
            raise ConfigError("attempt counts and VVV_LIVENESS_RATE must be positive")

    @property
    def videos_topic(self) -> str:
        return self.topic_videos or f"{self.namespace}.videos"

    @property
    def stale_topic(self) -> str:
        return self.topic_stale or f"{self.namespace}.stale"

    @property
    def results_topic(self) -> str:
        return self.topic_results or f"{self.namespace}.results"

    def group_id(self, group: str) -> str:
        return f"{self.namespace}.{group}"

    def dead_letter_topic(self, group: str) -> str:
        return f"{self.namespace}.{group}.dlq"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        d = cls.__dataclass_fields__
        hosts = env.get("VVV_THUMBNAIL_HOSTS")
        return cls(
            bootstrap=env.get("KAFKA_BOOTSTRAP_SERVERS") or DEFAULT_BOOTSTRAP,
            kafka=kafka_overrides_from_env(env),
            namespace=env.get("VVV_NAMESPACE") or "vvv",
            partitions=_env_int(env, "VVV_PARTITIONS", d["partitions"].default),
            replication_factor=_env_int(env, "VVV_REPLICATION_FACTOR", d["replication_factor"].default),
            topic_videos=env.get("VVV_TOPIC_VIDEOS", ""),
            topic_stale=env.get("VVV_TOPIC_STALE", ""),
            topic_results=env.get("VVV_TOPIC_RESULTS", ""),
            hook_timeout=_env_float(env, "VVV_HOOK_TIMEOUT", d["hook_timeout"].default),
            batch_size=_env_int(env, "VVV_BATCH_SIZE", d["batch_size"].default),
            stop_timeout=_env_float(env, "VVV_STOP_TIMEOUT", d["stop_timeout"].default),
            time_limit=_env_float(env, "VVV_TIME_LIMIT", d["time_limit"].default),
            max_in_flight=_env_int(env, "VVV_MAX_IN_FLIGHT", d["max_in_flight"].default),
            dlq_max_ratio=_env_float(env, "VVV_DLQ_MAX_RATIO", d["dlq_max_ratio"].default),
            max_message_bytes=_env_int(env, "VVV_MAX_MESSAGE_BYTES", d["max_message_bytes"].default),
            exactly_once=env.get("VVV_EXACTLY_ONCE", "").lower() in ("1", "true", "yes", "on"),
            metrics_port=_env_int(env, "VVV_METRICS_PORT", d["metrics_port"].default),
            stale_hours=_env_float(env, "VVV_STALE_HOURS", d["stale_hours"].default),
            thumbnail_hosts=tuple(h.strip().lower() for h in hosts.split(",") if h.strip())
            if hosts
            else d["thumbnail_hosts"].default,
            thumbnail_timeout=_env_float(env, "VVV_THUMBNAIL_TIMEOUT", d["thumbnail_timeout"].default),
            thumbnail_attempts=_env_int(env, "VVV_THUMBNAIL_ATTEMPTS", d["thumbnail_attempts"].default),
            thumbnail_retry_delay=_env_float(env, "VVV_THUMBNAIL_RETRY_DELAY", d["thumbnail_retry_delay"].default),
            thumbnail_max_bytes=_env_int(env, "VVV_THUMBNAIL_MAX_BYTES", d["thumbnail_max_bytes"].default),
            thumbnail_concurrency=_env_int(env, "VVV_THUMBNAIL_CONCURRENCY", d["thumbnail_concurrency"].default),
            oembed_url=env.get("VVV_OEMBED_URL") or d["oembed_url"].default,
            liveness_timeout=_env_float(env, "VVV_LIVENESS_TIMEOUT", d["liveness_timeout"].default),
            liveness_attempts=_env_int(env, "VVV_LIVENESS_ATTEMPTS", d["liveness_attempts"].default),
            liveness_retry_delay=_env_float(env, "VVV_LIVENESS_RETRY_DELAY", d["liveness_retry_delay"].default),
            liveness_rate=_env_float(env, "VVV_LIVENESS_RATE", d["liveness_rate"].default),
            liveness_concurrency=_env_int(env, "VVV_LIVENESS_CONCURRENCY", d["liveness_concurrency"].default),
        )
