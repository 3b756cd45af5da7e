"""All configuration in one typed object, read once from the environment (and CLI flags).

Every setting declares its environment name, its type and its allowed range next to its
default; ``Settings`` checks them all when it is built, so a bad value is one line naming
the setting, the value and what is allowed, before anything connects. An unknown ``VVV_*``
name is an error too, naming the closest real one.

Hand-written rather than pydantic-settings: that import alone costs ~125 ms, more than the
cron hook's whole budget in a fresh process.

Kafka client settings pass through to librdkafka, from (later wins) a ``client.properties``
file in the Java format every Kafka tool reads (``VVV_KAFKA_CONFIG``, ``--kafka-config``),
``VVV_KAFKA_<NAME>`` variables (``VVV_KAFKA_SECURITY_PROTOCOL=SASL_SSL`` is
``security.protocol``; ``VVV_KAFKA_SASL_PASSWORD_FILE=/run/secrets/pw`` reads the value from a
file) and ``vvv -X key=value``. Only ``KAFKA_BOOTSTRAP_SERVERS`` is read without the prefix:
orchestrators inject ``KAFKA_*`` variables of their own (a Kubernetes Service named ``kafka``
sets ``KAFKA_PORT=tcp://...``), which must not reach the client. Kubernetes' service links are
ignored under any prefix, ours included (a Service named ``vvv-thumbnails`` sets
``VVV_THUMBNAILS_PORT=tcp://...`` in every pod started after it).

Settings that would weaken a guarantee are refused like any bad value: topic names Kafka would
refuse, or two topics that are one; ``acks`` other than ``all`` ("delivered" means acknowledged
by the in-sync replicas); the broker address given twice, differently. Files named by settings
(secrets, ``client.properties``) are read only when they are regular files, and only so much.
"""

from __future__ import annotations

import dataclasses
import difflib
import io
import ipaddress
import logging
import math
import os
import re
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from vvv_core.errors import InvalidInput

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
# Read elsewhere, not settings of this object, but real names all the same.
OTHER_NAMES = frozenset({"VVV_SCHEMA_DIR"})
KAFKA_PREFIX = "VVV_KAFKA_"  # VVV_KAFKA_SECURITY_PROTOCOL -> librdkafka's security.protocol
KAFKA_SOURCES = "VVV_KAFKA_<NAME>[_FILE] variables, VVV_KAFKA_CONFIG or --kafka-config, and -X"
SECRET_SUFFIX = "_FILE"  # VVV_KAFKA_SASL_PASSWORD_FILE: sasl.password, read from that file
GROUP_PROTOCOLS = ("auto", "consumer", "classic")
# Kafka's own rule (org.apache.kafka.common.internals.Topic): these characters, at most 249, not "." or "..";
# names starting "__" are its internal topics (__consumer_offsets, __transaction_state).
TOPIC_NAME = re.compile(r"(?!\.{1,2}$)(?!__)[A-Za-z0-9._-]{1,249}")
# A prefix joined to names by ".": no empty part, and room left in 249 for ".thumbnails.dlq" and the like.
NAMESPACE = re.compile(
    r"(?=.{1,200}$)[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?)*"
)
HOST_NAME = re.compile(r"(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")
# Kubernetes service links (a Service "vvv-kafka" -> VVV_KAFKA_SERVICE_HOST, VVV_KAFKA_PORT=tcp://...,
# VVV_KAFKA_PORT_9092_TCP_ADDR ...): never settings, whatever their prefix. <NAME>_PORT by its value, since
# VVV_METRICS_PORT is a real setting.
SERVICE_LINK = re.compile(
    r"[A-Z0-9_]+_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT_\d+_(TCP|UDP|SCTP)(_ADDR|_PORT|_PROTO)?)"
)
SERVICE_LINK_PORT = re.compile(r"[A-Z0-9_]+_PORT")
SERVICE_LINK_URL = re.compile(r"(tcp|udp|sctp)://\S+")
PROPERTY = re.compile(r"[a-z0-9]+(\.[a-z0-9]+)*")  # a librdkafka setting's name
SECRET_MAX_BYTES = 64 * 1024
PROPERTIES_MAX_BYTES = 1024 * 1024
# librdkafka's names for the same property: one of them given twice is the same property twice
ALIASES = {"metadata.broker.list": "bootstrap.servers", "request.required.acks": "acks"}
DEAD_LETTER_ROOM = 64 * 1024  # beyond a dead letter's value, for its key and headers
ACKNOWLEDGED = ("all", "-1")  # every producer here promises what the in-sync replicas acknowledged

log = logging.getLogger(__name__)


class ConfigError(InvalidInput):
    """A setting that cannot be used; the message names it, its value and what is allowed.

    Always one printable line, whatever names and paths it quotes (a newline in a variable's value is shown
    as ``\\n``): the command line prints it as its one line."""

    def __init__(self, message: str) -> None:
        super().__init__("".join(c if c.isprintable() else repr(c)[1:-1] for c in message))


def setting(default: Any, low: float | None = None, high: float | None = None, *, env: str = "", check=None) -> Any:
    """A field with its environment name (default ``VVV_<FIELD>``), numeric range and extra check."""
    meta = {"low": low, "high": high, "env": env, "check": check}
    if isinstance(default, dict):  # mutable: a fresh one each, and left out of the hash
        return field(default_factory=dict, metadata=meta, hash=False)
    return field(default=default, metadata=meta)


def _env_name(f: dataclasses.Field) -> str:
    return f.metadata.get("env") or f"VVV_{f.name.upper()}"


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _describe(f: dataclasses.Field) -> str:
    low, high = f.metadata.get("low"), f.metadata.get("high")
    kind = "a whole number" if f.type == "int" else "a number"
    if low is not None and high is not None:
        return f"{kind} from {_number(low)} to {_number(high)}"
    return f"{kind} of at least {_number(low)}" if low is not None else kind


def _parse(f: dataclasses.Field, raw: str) -> Any:
    """The typed value of one environment variable; ConfigError naming it when it does not parse."""
    name = _env_name(f)
    if f.type == "bool":
        truth = dict.fromkeys(("1", "true", "yes", "on"), True) | dict.fromkeys(("0", "false", "no", "off"), False)
        if raw.strip().lower() not in truth:
            raise ConfigError(f"{name}={raw!r}: expected one of 1/0, true/false, yes/no, on/off")
        return truth[raw.strip().lower()]
    if f.type in ("int", "float"):
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r}: expected {_describe(f)}") from None
        if f.type == "int" and (not math.isfinite(value) or value != int(value)):
            raise ConfigError(f"{name}={raw!r}: expected {_describe(f)}")
        return int(value) if f.type == "int" else value
    if f.type == "tuple[str, ...]":
        return tuple(h.strip().lower() for h in raw.split(","))
    return raw


def _validate(f: dataclasses.Field, value: Any, shown: str | None = None) -> None:
    """ConfigError unless ``value`` is in range; ``shown`` is how the user wrote it (the raw variable)."""
    name, meta = _env_name(f), f.metadata
    shown = repr(value) if shown is None else repr(shown)
    if f.type in ("int", "float"):
        low, high = meta.get("low"), meta.get("high")
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or (low is not None and value < low)
            or (high is not None and value > high)
        ):
            raise ConfigError(f"{name}={shown}: expected {_describe(f)}")
    if (check := meta.get("check")) is not None and (problem := check(value)) is not None:
        raise ConfigError(f"{name}={shown}: {problem}")


def _bootstrap(value: str) -> str | None:
    for server in value.split(","):
        host, sep, port = server.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            return "expected HOST:PORT[,HOST:PORT...] with ports from 1 to 65535"
    return None


def _topic(value: str) -> str | None:
    if value and not TOPIC_NAME.fullmatch(value):
        return "expected a Kafka topic name: 1-249 of A-Z a-z 0-9 . _ -, not . or .., not starting with __"
    return None


def _namespace(value: str) -> str | None:
    if not NAMESPACE.fullmatch(value):
        return (
            "expected 1-200 of A-Z a-z 0-9 . _ -, parts joined by dots, each starting and ending with a letter or digit"
        )
    return None


def host_and_port(entry: str) -> tuple[str, int | None]:
    """An allow-list entry, ``host``, ``host:port``, ``[v6]`` or ``[v6]:port``, as (host, port or None);
    ValueError if it is none of them. No port: the scheme's default port only."""
    if entry.startswith("["):
        host, bracket, rest = entry[1:].partition("]")
        if not bracket or not isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address):
            raise ValueError(entry)
        port = rest.removeprefix(":") if rest.startswith(":") else None
        if rest and port is None:
            raise ValueError(entry)
    else:  # a bare IPv6 address has more than one colon, and no port
        host, port = entry.split(":") if entry.count(":") == 1 else (entry, None)
        named = HOST_NAME.fullmatch(host) and not host.replace(".", "").isdigit()  # 2130706433 is no name
        if not named and not _is_ip(host):
            raise ValueError(entry)
    return host, _port(port, entry)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _port(text: str | None, entry: str) -> int | None:
    if text is None:
        return None
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(entry)
    return int(text)


def _hosts(value: tuple[str, ...]) -> str | None:
    if not value or not all(value):
        return "expected a comma-separated list of host names or IP addresses, none empty"
    for entry in value:
        try:
            host_and_port(entry)
        except ValueError:
            return f"{entry!r} is not a host name or IP address, with a port or not (no scheme or path)"
    return None


def _http_url(value: str) -> str | None:
    """An endpoint requests add a path or a query to: no query or fragment of its own."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        return f"not a URL ({exc})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "expected an http:// or https:// URL with a host"
    if "?" in value or "#" in value:
        return "expected an http:// or https:// URL without a query or fragment (the request adds its own)"
    return None


def _oembed_url(value: str) -> str | None:
    if (problem := _http_url(value)) is None and "@" in urlsplit(value).netloc:
        return "expected an http:// or https:// URL without user@ (the request refuses userinfo)"
    return problem


def _token(value: str) -> str | None:
    if value and (len(value) < 16 or not value.isprintable() or not value.strip()):
        return "expected at least 16 printable characters, not only spaces (or unset: a new one each start)"
    return None


def _kafka_problem(key: str, value: str) -> str | None:
    """Why a librdkafka setting may not be used here, or None."""
    if "\0" in value:
        return "contains a NUL character"
    if key == "acks" and value.strip().lower() not in ACKNOWLEDGED:
        return 'expected all or -1: "delivered" means acknowledged by the in-sync replicas, for every producer here'
    return None


def _one_of(choices: tuple[str, ...]) -> Callable[[str], str | None]:
    return lambda value: None if value in choices else f"expected one of {', '.join(choices)}"


def _port_or_off(value: int) -> str | None:
    return None if value == 0 or 1 <= value <= 65535 else "expected 0 (off) or a port from 1 to 65535"


@dataclass(frozen=True)
class Settings:
    bootstrap: str = setting(DEFAULT_BOOTSTRAP, env="KAFKA_BOOTSTRAP_SERVERS", check=_bootstrap)
    kafka: Mapping[str, str] = setting({}, env="VVV_KAFKA_*")  # librdkafka settings, passed through
    kafka_config: str = setting("")  # a client.properties file (Java format) of librdkafka settings
    namespace: str = setting("vvv", check=_namespace)  # prefix of topics and groups
    partitions: int = setting(6, 1, 1000)
    replication_factor: int = setting(1, 1, 16)
    topic_videos: str = setting("", check=_topic)  # empty: "<namespace>.videos"; see the properties below
    topic_stale: str = setting("", check=_topic)
    topic_results: str = setting("", check=_topic)
    hook_timeout: float = setting(2.0, 0.05, 300)  # seconds the hook may add to the cron
    batch_size: int = setting(2000, 1, 100_000)  # messages taken per poll
    stop_timeout: float = setting(10.0, 0, 3600)  # seconds a graceful stop may take
    time_limit: float = setting(120.0, 0.1, 86_400)  # seconds one attempt at one event may run
    max_in_flight: int = setting(10_000, 1, 1_000_000)  # unfinished events per process before fetching pauses
    dlq_max_ratio: float = setting(0.5, 0.001, 1)  # dead-lettered share of recent events that stops a consumer
    max_message_bytes: int = setting(16 * 1024 * 1024, 1024, 512 * 1024 * 1024)  # largest dead letter kept whole
    exactly_once: bool = setting(False)  # results, dead letters and offsets in one Kafka transaction per commit
    commit_interval: float = setting(1.0, 0, 3600)  # seconds between offset commits while work flows; 0: every turn
    schema_registry_url: str = setting("", check=lambda v: _http_url(v) if v else None)  # empty: single-object
    console_token: str = setting("", check=_token)  # what `vvv console` asks of a replay; empty: a new one each start
    progress_interval: float = setting(15.0, 0, 86_400)  # seconds between a member's progress lines; 0: none
    metrics_port: int = setting(0, check=_port_or_off)  # serve /metrics, /healthz and /readyz here; 0: off
    broker_timeout: float = setting(300.0, 5, 86_400)  # a consumer without a broker this long exits 1
    # auto: KIP-848's consumer protocol where the broker offers it (see kafka.group_protocol)
    group_protocol: str = setting("auto", check=_one_of(GROUP_PROTOCOLS))
    stale_hours: float = setting(48.0, 0.01, 87_600)
    state_dir: str = setting(".vvv-state", check=lambda v: None if v else "must not be empty")  # local state stores
    # thumbnails
    thumbnail_hosts: tuple[str, ...] = setting(DEFAULT_THUMBNAIL_HOSTS, check=_hosts)
    thumbnail_timeout: float = setting(8.0, 0.1, 300)  # one deadline: connect, headers and body together
    thumbnail_attempts: int = setting(3, 1, 100)
    thumbnail_retry_delay: float = setting(30.0, 0, 86_400)
    thumbnail_max_bytes: int = setting(5_000_000, 1024, 50_000_000)
    thumbnail_concurrency: int = setting(64, 1, 1024)
    thumbnail_memory: int = setting(96_000_000, 16_000_000, 4_000_000_000)  # bodies and pixels held at once, half each
    # liveness
    oembed_url: str = setting("https://www.youtube.com/oembed", check=_oembed_url)
    liveness_timeout: float = setting(8.0, 0.1, 300)
    liveness_attempts: int = setting(3, 1, 100)
    liveness_retry_delay: float = setting(60.0, 0, 86_400)
    liveness_rate: float = setting(20.0, 0.1, 6000)  # requests per minute for the whole group
    liveness_concurrency: int = setting(8, 1, 1024)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _validate(f, getattr(self, f.name))
        if self.thumbnail_max_bytes >= self.thumbnail_memory // 2:
            raise ConfigError(
                f"VVV_THUMBNAIL_MAX_BYTES={self.thumbnail_max_bytes} must be under half of "
                f"VVV_THUMBNAIL_MEMORY={self.thumbnail_memory}: half holds bodies, half decodes them"
            )
        self._check_topics()
        for key, value in self.kafka.items():
            if ALIASES.get(key, key) == "bootstrap.servers" and value != self.bootstrap:
                raise ConfigError(f"{key}={value!r} (a librdkafka setting) names the brokers again: use bootstrap")
            if (problem := _kafka_problem(ALIASES.get(key, key), value)) is not None:
                raise ConfigError(f"{key}={value!r} (a librdkafka setting): {problem}")

    def _check_topics(self) -> None:
        """Each topic its own: results into an input topic, or an input read by the wrong group, loses events.

        Kafka takes "." and "_" for the same character in a topic's name (their metrics collide), so do we;
        and "<namespace>.<anything>.dlq" and ".state" are the names of dead-letter and changelog topics."""
        topics = {"VVV_TOPIC_VIDEOS": self.videos_topic, "VVV_TOPIC_STALE": self.stale_topic}
        topics |= {"VVV_TOPIC_RESULTS": self.results_topic, "the table topic": self.table_topic}
        given = {"VVV_TOPIC_VIDEOS": self.topic_videos, "VVV_TOPIC_STALE": self.topic_stale}
        given["VVV_TOPIC_RESULTS"] = self.topic_results
        ours = f"{self.namespace}.".replace(".", "_")
        for name, topic in topics.items():
            if not given.get(name):
                continue
            same = [other for other, t in topics.items() if other != name and _kafka_same(t, topic)]
            if same:
                raise ConfigError(
                    f"{name}={topic!r}: the same topic as {same[0]} ({topics[same[0]]}): each must be its own"
                )
            plain = topic.replace(".", "_")
            if plain.startswith(ours) and plain.endswith(("_dlq", "_state")):
                raise ConfigError(
                    f"{name}={topic!r}: a dead-letter or changelog topic's name (<namespace>.<group>.dlq)"
                )

    @property
    def dead_letter_bytes(self) -> int:
        """The largest dead-letter record: a value kept whole (``VVV_MAX_MESSAGE_BYTES``), its key and headers."""
        return self.max_message_bytes + DEAD_LETTER_ROOM

    @property
    def thumbnail_host_names(self) -> tuple[str, ...]:
        """The allow-listed thumbnail hosts without their ports (what a browser is let load images from)."""
        return tuple(dict.fromkeys(host_and_port(entry)[0] for entry in self.thumbnail_hosts))

    @property
    def videos_topic(self) -> str:
        return self.topic_videos or f"{self.namespace}.videos"

    @property
    def stale_topic(self) -> str:
        return self.topic_stale or f"{self.namespace}.stale"

    @property
    def results_topic(self) -> str:
        return self.topic_results or f"{self.namespace}.results"

    def topic(self, name: str) -> str:
        """One of the project's topics by its short name: videos, stale or results."""
        return {"videos": self.videos_topic, "stale": self.stale_topic, "results": self.results_topic}[name]

    def group_id(self, group: str) -> str:
        return f"{self.namespace}.{group}"

    def dead_letter_topic(self, group: str) -> str:
        return f"{self.namespace}.{group}.dlq"

    @property
    def table_topic(self) -> str:
        """The compacted topic of each video's current results (``VideoState``), kept by the sink."""
        return f"{self.namespace}.video_state"

    def changelog_topic(self, group: str) -> str:
        """The compacted topic a group's state store writes every change to."""
        return f"{self.namespace}.{group}.state"

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes``, validated like any other."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Environment name -> field name, for every setting read from one variable."""
        return {_env_name(f): f.name for f in dataclasses.fields(cls) if f.name != "kafka"}

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, bootstrap: str | None = None, flags: Mapping[str, str] = {}
    ) -> Settings:
        """The settings from ``env`` (the process's), and from the command line's ``--bootstrap`` and ``-X``
        ``flags``: librdkafka settings from a properties file, then ``VVV_KAFKA_*``, then ``-X``, the later
        winning; the same one twice within one of them, or the brokers named differently in two places, is
        an error naming both."""
        env = without_service_links(os.environ if env is None else env)
        names = cls.env_names()
        unknown_names(env, names)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for env_name, field_name in names.items():
            if (raw := env.get(env_name, "")) != "":
                values[field_name] = _parse(fields[field_name], raw)
                _validate(fields[field_name], values[field_name], raw)
        path = values.get("kafka_config", "")
        layers = [
            _layer(
                [Given(k, v, f"{path} ({k})", secret=True) for k, v in read_properties(path).items()] if path else []
            ),
            _layer(kafka_overrides_from_env(env, names)),
            _layer([Given(k, v, f"-X {k}") for k, v in flags.items()]),
        ]
        kafka = {key: given for layer in layers for key, given in layer.items()}  # later layers win
        for given in kafka.values():
            if (problem := _kafka_problem(given.key, given.value)) is not None:
                raise ConfigError(f"{given.said}: {problem}")
        if given := kafka.pop("bootstrap.servers", None):
            named = ("--bootstrap", bootstrap) if bootstrap else ("KAFKA_BOOTSTRAP_SERVERS", values.get("bootstrap"))
            if named[1] and named[1] != given.value:
                again = f"the brokers are named again, differently, by {named[0]}={named[1]!r}"
                raise ConfigError(f"{given.said}: {again}: set one of them")
            values["bootstrap"] = given.value
        if bootstrap:
            values["bootstrap"] = bootstrap
        return cls(kafka={key: given.value for key, given in kafka.items()}, **values)


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float):
        return _number(value)
    if isinstance(value, tuple):
        return f"{value[0]},... ({len(value)} hosts)"
    return value or "none"


# The settings each part of the project reads, by field name: a command's --help lists those of the parts it
# uses (the README's configuration table lists them all). Every setting is in at least one part.
PARTS: dict[str, tuple[str, ...]] = {
    "kafka": ("bootstrap", "kafka", "kafka_config", "namespace", "topic_videos", "topic_stale", "topic_results"),
    "topics": ("partitions", "replication_factor", "max_message_bytes"),  # what the topics are created with
    "schemas": ("schema_registry_url",),  # and VVV_SCHEMA_DIR: whatever encodes or decodes events or results
    "hook": ("hook_timeout", "stale_hours"),
    "member": (
        "batch_size",
        "stop_timeout",
        "time_limit",
        "max_in_flight",
        "dlq_max_ratio",
        "max_message_bytes",
        "exactly_once",
        "commit_interval",
        "progress_interval",
        "metrics_port",
        "broker_timeout",
        "group_protocol",
    ),
    "thumbnails": (
        "thumbnail_hosts",
        "thumbnail_timeout",
        "thumbnail_attempts",
        "thumbnail_retry_delay",
        "thumbnail_max_bytes",
        "thumbnail_concurrency",
        "thumbnail_memory",
    ),
    "liveness": (
        "oembed_url",
        "liveness_timeout",
        "liveness_attempts",
        "liveness_retry_delay",
        "liveness_rate",
        "liveness_concurrency",
    ),
    "scoring": ("state_dir",),  # stream mode's local store
    "console": ("console_token", "thumbnail_hosts"),  # thumbnails shown only from the allowed hosts
}


def environment_help(parts: Iterable[str] | None = None) -> str:
    """The variables that ``parts`` read (every one for None), with their defaults: a command's epilog."""
    wanted = {name for part in (PARTS if parts is None else parts) for name in PARTS[part]}
    if not wanted:
        return "environment: none of the settings (the README's configuration table lists them)"
    lines = ["environment it reads (default in brackets; the README's configuration table has them all):"]
    for f in dataclasses.fields(Settings):
        if f.name not in wanted:
            continue
        if f.name == "kafka":
            lines.append("  VVV_KAFKA_<NAME>[_FILE]  a librdkafka setting (e.g. VVV_KAFKA_SECURITY_PROTOCOL=SASL_SSL)")
            continue
        lines.append(f"  {_env_name(f)} [{_shown(f.default)}]")
    if "schema_registry_url" in wanted:
        lines.append("  VVV_SCHEMA_DIR [the package's schemas]")
    return "\n".join(lines)


def _kafka_same(a: str, b: str) -> bool:
    return a.replace(".", "_") == b.replace(".", "_")


def service_link(name: str, value: str) -> bool:
    """Whether ``name=value`` is a variable Kubernetes injects for a Service (``enableServiceLinks``)."""
    return bool(SERVICE_LINK.fullmatch(name)) or bool(
        SERVICE_LINK_PORT.fullmatch(name) and SERVICE_LINK_URL.fullmatch(value)
    )


def without_service_links(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` without Kubernetes' service links of our names (``VVV_THUMBNAILS_PORT=tcp://...``): never settings."""
    kept = {}
    for name, value in env.items():
        if name.startswith("VVV_") and service_link(name, value):
            log.debug("ignoring %s: a Kubernetes service link, not a setting", name)
        else:
            kept[name] = value
    return kept


class Given(NamedTuple):
    """One librdkafka setting as one source gives it."""

    key: str  # librdkafka's name, its alias resolved (metadata.broker.list is bootstrap.servers)
    value: str
    source: str  # VVV_KAFKA_ACKS, -X acks, FILE (acks), VVV_KAFKA_SASL_PASSWORD_FILE=/run/secrets/pw
    secret: bool = False  # read from a file: an error never shows the value

    @property
    def said(self) -> str:
        """As an error names it."""
        return self.source if self.secret else f"{self.source}={self.value!r}"


def _layer(given: list[Given]) -> dict[str, Given]:
    """One source's librdkafka settings by their canonical names; one set twice in it is an error."""
    layer: dict[str, Given] = {}
    for g in given:
        key = ALIASES.get(g.key, g.key)
        if key in layer:
            raise ConfigError(f"{g.source} and {layer[key].source} both set {key}: set it once")
        layer[key] = g._replace(key=key)
    return layer


def unknown_names(env: Mapping[str, str], names: Mapping[str, str]) -> None:
    """ConfigError for a ``VVV_*`` variable no setting reads (a typo would otherwise be ignored)."""
    known = set(names) | OTHER_NAMES
    for name in sorted(n for n in env if n.startswith("VVV_") and n not in known and not n.startswith(KAFKA_PREFIX)):
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ConfigError(f"{name} is not a setting{hint} (see the README's configuration table)")


def kafka_overrides_from_env(env: Mapping[str, str], names: Mapping[str, str]) -> list[Given]:
    """``VVV_KAFKA_FOO_BAR=x`` is ``foo.bar``; ``VVV_KAFKA_FOO_FILE=path`` is foo, read from that file."""
    overrides = []
    for name, value in sorted(env.items()):
        if not name.startswith(KAFKA_PREFIX) or name in names:
            continue
        secret = name.endswith(SECRET_SUFFIX)
        key = name[len(KAFKA_PREFIX) :].removesuffix(SECRET_SUFFIX if secret else "").lower().replace("_", ".")
        if not PROPERTY.fullmatch(key):
            raise ConfigError(f"{name} is not a setting: VVV_KAFKA_<NAME> is librdkafka's name in capitals and _")
        if secret:
            overrides.append(Given(key, _read_secret(name, value), f"{name}={value}", secret=True))
        else:
            overrides.append(Given(key, value, name))
    return overrides


def read_bounded(path: str, limit: int, what: str) -> bytes:
    """A regular file's bytes, at most ``limit`` of them; ConfigError naming ``what`` otherwise.

    A FIFO, a device or a socket is refused before it is opened (opening a FIFO blocks until a writer
    comes; reading a device may never end), and again after (a path swapped in between); the open itself
    cannot block (``O_NONBLOCK``)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise ConfigError(f"{what}: not a regular file (a FIFO, device or folder is not read)")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        with open(fd, "rb") as file:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ConfigError(f"{what}: not a regular file (a FIFO, device or folder is not read)")
            data = file.read(limit + 1)
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read it: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise ConfigError(f"{what}: larger than {limit:,} bytes")
    return data


def _read_secret(name: str, path: str) -> str:
    data = read_bounded(path, SECRET_MAX_BYTES, f"{name}={path}")
    try:
        return data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise ConfigError(f"{name}={path}: the secret is not UTF-8 text") from None


def read_properties(path: str) -> dict[str, str]:
    """A Java ``.properties`` file (``client.properties``) as librdkafka settings."""
    from jproperties import Properties  # only when a file is configured

    what = f"VVV_KAFKA_CONFIG / --kafka-config {path}"
    data = read_bounded(path, PROPERTIES_MAX_BYTES, what)
    properties = Properties()
    try:
        properties.load(io.BytesIO(data), "utf-8")
    except Exception as exc:  # jproperties' own parse errors, and bytes that are not UTF-8
        raise ConfigError(f"{what}: not a properties file: {exc}") from None
    return {key: value for key, (value, _meta) in properties.items()}
