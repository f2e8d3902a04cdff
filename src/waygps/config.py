"""The TOML configuration, read into attrs frozen classes.

Every problem is a :class:`ConfigError` whose message is one line naming the
key: ``listener[1].port: 8081 is already used by listener[0]``.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from attrs import field, frozen

ENV_PREFIX = "WAYGPS_"


class ConfigError(Exception):
    """A configuration problem, already worded for an operator."""


@frozen
class Collections:
    positions: str = "DadosVeiculo"
    vehicles: str = "Veiculo"
    commands: str = "Comando"
    rejected: str = "FramesRejeitados"
    alarms: str = "Alarme"
    instances: str = "WayGPSInstance"


@frozen
class MongoConfig:
    uri: str = ""
    database: str = "waygps"
    collections: Collections = Collections()
    write_concern: str = "majority"
    connect_timeout: float = 10.0
    #: A ``2dsphere`` index on the history (``DadosVeiculo.location``): off by default, since it
    #: costs most of an insert on the embedded store and few deployments query the history by place.
    history_geo_index: bool = False

    @property
    def embedded(self) -> bool:
        return not self.uri


@frozen
class EmbeddedConfig:
    data_dir: str = "var/db"
    host: str = "127.0.0.1"
    port: int = 27018
    command: str = "secantusd-py"
    startup_timeout: float = 30.0
    cache_size: str = "256M"
    replica_set: bool = True


@frozen
class ListenerConfig:
    driver: str
    port: int
    transport: str = "tcp"
    host: str = "0.0.0.0"
    name: str = ""
    idle_timeout: float = 1800.0
    max_connections: int = 10000
    max_connections_per_ip: int = 0
    identify_timeout: float = 30.0
    backlog: int = 1024  # TCP listen queue (the kernel caps it at net.core.somaxconn)
    accept_unknown_devices: bool = True
    ack: bool = True
    proxy_protocol: bool = False
    options: Mapping[str, Any] = field(factory=dict, converter=dict)

    def option(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)


@frozen
class TokenConfig:
    token_sha256: str
    devices: frozenset[str] | None  # None = every device
    secret: str = field(default="", repr=False, eq=False)  # the plaintext when configured so: redacted from logs

    def allows(self, imei: str) -> bool:
        return self.devices is None or imei in self.devices


@frozen
class WebSocketConfig:
    port: int = 8000
    host: str = "127.0.0.1"  # the web port (WebSocket, /metrics, /health): loopback unless configured
    path: str = "/ws/gps/"
    tokens: tuple[TokenConfig, ...] = ()
    max_queue: int = 1000
    # Feed limits (docs/websocket.md, "Limits").
    max_clients: int = 1000
    max_connections_per_token: int = 5
    max_message_bytes: int = 65536
    ping_interval: float = 30.0
    ping_timeout: float = 10.0
    handshake_timeout: float = 10.0
    slow_client_timeout: float = 30.0
    failed_handshakes_per_minute: int = 10
    compression: bool = True


@frozen
class MapConfig:
    """The map page: where its background tiles come from (``{s}``, ``{z}``, ``{x}``, ``{y}`` as in Leaflet)."""

    tiles: str = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    attribution: str = '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors'
    max_zoom: int = 19


@frozen
class WebConfig:
    """``[web]``: settings of the web port that are not the WebSocket feed's (its address and port
    stay ``[websocket] host`` / ``port``)."""

    metrics_token: str = field(default="", repr=False)  # when set, /metrics and /health require it


@frozen
class PersistenceConfig:
    batch_size: int = 500
    batch_interval_ms: float = 20.0
    queue_limit: int = 20000
    store_timeout: float = 15.0
    reconnect_max_delay: float = 30.0


@frozen
class RetentionConfig:
    days: int = 90
    #: Who deletes reports past ``days``: ``server`` (a TTL index, MongoDB's own monitor), ``waygps``
    #: (a plain index and WayGPS's chunked expiry pass), ``auto`` (``waygps`` on the embedded store).
    expiry: str = "auto"
    #: Seconds between WayGPS's expiry passes (``expiry`` = ``waygps``).
    interval: float = 600.0

    def by_waygps(self, mongodb: "MongoConfig") -> bool:
        """Whether WayGPS itself deletes expired reports (else a TTL index does, or nothing)."""
        if self.days <= 0:
            return False
        return self.expiry == "waygps" or (self.expiry == "auto" and mongodb.embedded)


@frozen
class RejectedFramesConfig:
    """``[rejected_frames]``: rejected and odd frames kept in a capped collection for diagnosis."""

    enabled: bool = True
    size_mb: int = 64  # capped collection size; the oldest frames go first
    max_bytes: int = 2048  # bytes of a frame kept (as hex)
    queue: int = 1000  # frames waiting to be written; beyond that they are counted and dropped


@frozen
class CommandsConfig:
    poll_interval: float = 2.0
    ack_timeout: float = 60.0
    max_attempts: int = 3
    expiry_hours: float = 24.0
    block_max_speed_kmh: float = 20.0
    block_speed_max_age: float = 600.0  # seconds; an older speed counts as unknown (the guard waits)
    instance_id: str = ""


@frozen
class HistoryConfig:
    """``[history]``: the HTTP API's track exports and the trip / stop rules (``waygps.history.trips``)."""

    moving_speed_kmh: float = 5.0
    min_stop_seconds: float = 300.0
    max_gap_seconds: float = 1800.0
    min_trip_distance_m: float = 200.0
    use_ignition: bool = True
    batch_size: int = 1000


@frozen
class StatsConfig:
    """``[stats]``: daily reception statistics in ``EstadisticasRecepcion``."""

    enabled: bool = True
    flush_interval: float = 60.0
    collection: str = "EstadisticasRecepcion"


@frozen
class LoggingConfig:
    format: str = "text"
    level: str = "info"


@frozen
class ClusterConfig:
    """Several instances on one MongoDB (see docs/scaling.md)."""

    feed: str = "auto"  # "auto": change streams when the store is a replica set; "local": in-process bus
    heartbeat_interval: float = 5.0
    lease_seconds: float = 20.0


@frozen
class RuntimeConfig:
    """Tuning of the server's Python process (see docs/configuration.md, ``[runtime]``)."""

    gc_threshold: int = 10_000  # young-generation threshold of the cyclic collector; 0: Python's own
    gc_freeze: bool = True  # after start-up, leave the start-up objects out of every collection


@frozen
class Config:
    mongodb: MongoConfig = MongoConfig()
    embedded: EmbeddedConfig = EmbeddedConfig()
    listeners: tuple[ListenerConfig, ...] = ()
    websocket: WebSocketConfig = WebSocketConfig()
    map: MapConfig = MapConfig()
    web: WebConfig = WebConfig()
    persistence: PersistenceConfig = PersistenceConfig()
    retention: RetentionConfig = RetentionConfig()
    commands: CommandsConfig = CommandsConfig()
    logging: LoggingConfig = LoggingConfig()
    rejected_frames: RejectedFramesConfig = RejectedFramesConfig()
    history: HistoryConfig = HistoryConfig()
    stats: StatsConfig = StatsConfig()
    cluster: ClusterConfig = ClusterConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    path: str = ""


# --- reading ---------------------------------------------------------------

_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}


def _check_type(key: str, value: Any, kind: type) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, bool):
        raise ConfigError(f"{key}: expected {_TYPE_NAMES[kind]}, got {value!r}")
    if not isinstance(value, kind):
        raise ConfigError(f"{key}: expected {_TYPE_NAMES.get(kind, kind.__name__)}, got {value!r}")
    return value


def _table(key: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}: expected a table, got {value!r}")
    return value


def _simple(cls: type, key: str, raw: Mapping[str, Any], skip: Sequence[str] = ()) -> dict[str, Any]:
    """Check ``raw`` against the scalar fields of attrs class ``cls``."""
    fields = {f.name: f for f in cls.__attrs_attrs__ if f.name not in skip}
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if name in skip:
            continue
        if name not in fields:
            raise ConfigError(f"{key}.{name}: unknown key")
        kind = type(fields[name].default)
        out[name] = _check_type(f"{key}.{name}", value, kind)
    return out


def _positive(key: str, value: float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{key}: must be {'zero or more' if allow_zero else 'greater than zero'}, got {value}")


def _port(key: str, value: int) -> None:
    if not 0 <= value <= 65535:
        raise ConfigError(f"{key}: not a port number: {value}")


def _mongodb(raw: Mapping[str, Any]) -> MongoConfig:
    collections = Collections(**_simple(Collections, "mongodb.collections", _table("mongodb.collections", raw.get("collections", {}))))
    values = _simple(MongoConfig, "mongodb", raw, skip=("collections",))
    wc = values.get("write_concern", "majority")
    if wc != "majority" and not wc.isdigit():
        raise ConfigError(f"mongodb.write_concern: expected 'majority' or a number of nodes, got {wc!r}")
    return MongoConfig(collections=collections, **values)


def _listener(index: int, raw: Any, drivers: Mapping[str, Any] | None) -> ListenerConfig:
    key = f"listener[{index}]"
    raw = _table(key, raw)
    for required in ("driver", "port"):
        if required not in raw:
            raise ConfigError(f"{key}.{required}: missing")
    driver_name = _check_type(f"{key}.driver", raw["driver"], str)
    common = {f.name for f in ListenerConfig.__attrs_attrs__} - {"options"}
    driver_options: Mapping[str, Any] = {}
    if drivers is not None:
        if driver_name not in drivers:
            known = ", ".join(sorted(drivers)) or "none"
            raise ConfigError(f"{key}.driver: unknown driver {driver_name!r} (installed: {known})")
        driver_options = dict(getattr(drivers[driver_name], "options", {}) or {})
    values: dict[str, Any] = {}
    options: dict[str, Any] = dict(driver_options)
    fields = {f.name: f for f in ListenerConfig.__attrs_attrs__}
    for name, value in raw.items():
        if name in common:
            kind = str if name == "driver" else (int if name == "port" else type(fields[name].default))
            values[name] = _check_type(f"{key}.{name}", value, kind)
        elif name in driver_options:
            options[name] = _check_type(f"{key}.{name}", value, type(driver_options[name]))
        elif drivers is None and name not in common:
            options[name] = value
        else:
            raise ConfigError(f"{key}.{name}: unknown key for driver {driver_name!r}")
    _port(f"{key}.port", values["port"])
    transport = values.get("transport", "tcp")
    if transport not in ("tcp", "udp"):
        raise ConfigError(f"{key}.transport: expected 'tcp' or 'udp', got {transport!r}")
    if drivers is not None and transport not in drivers[driver_name].transports:
        raise ConfigError(f"{key}.transport: driver {driver_name!r} does not serve {transport}")
    for name in ("idle_timeout", "identify_timeout"):
        if name in values:
            _positive(f"{key}.{name}", values[name])
    for name in ("max_connections", "max_connections_per_ip"):
        if name in values:
            _positive(f"{key}.{name}", values[name], allow_zero=True)
    if values.get("proxy_protocol") and transport != "tcp":
        raise ConfigError(f"{key}.proxy_protocol: the PROXY protocol applies to TCP listeners only")
    if "backlog" in values:
        _positive(f"{key}.backlog", values["backlog"])
    values.setdefault("name", f"{driver_name}-{transport}-{values['port']}")
    return ListenerConfig(options=options, **values)


def _token(index: int, raw: Any) -> TokenConfig:
    key = f"websocket.tokens[{index}]"
    raw = _table(key, raw)
    unknown = set(raw) - {"token", "token_sha256", "devices"}
    if unknown:
        raise ConfigError(f"{key}.{sorted(unknown)[0]}: unknown key")
    if ("token" in raw) == ("token_sha256" in raw):
        raise ConfigError(f"{key}: give exactly one of token or token_sha256")
    if "token" in raw:
        secret = _check_type(f"{key}.token", raw["token"], str)
        if not secret:
            raise ConfigError(f"{key}.token: empty")
        digest = hashlib.sha256(secret.encode()).hexdigest()
    else:
        digest = _check_type(f"{key}.token_sha256", raw["token_sha256"], str).lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ConfigError(f"{key}.token_sha256: expected 64 hex digits")
    devices_raw = raw.get("devices", "*")
    if devices_raw == "*":
        devices = None
    elif isinstance(devices_raw, list) and all(isinstance(d, str) for d in devices_raw):
        devices = frozenset(devices_raw)
    else:
        raise ConfigError(f"{key}.devices: expected \"*\" or a list of IMEIs, got {devices_raw!r}")
    return TokenConfig(token_sha256=digest, devices=devices, secret=raw.get("token", ""))


def _websocket(raw: Mapping[str, Any]) -> WebSocketConfig:
    tokens_raw = raw.get("tokens", [])
    if not isinstance(tokens_raw, list):
        raise ConfigError("websocket.tokens: expected an array of tables ([[websocket.tokens]])")
    tokens = tuple(_token(i, t) for i, t in enumerate(tokens_raw))
    values = _simple(WebSocketConfig, "websocket", raw, skip=("tokens",))
    if "port" in values:
        _port("websocket.port", values["port"])
    path = values.get("path", "/ws/gps/")
    if not path.startswith("/"):
        raise ConfigError(f"websocket.path: must start with '/', got {path!r}")
    for name in ("max_queue", "max_clients", "max_connections_per_token", "max_message_bytes",
                 "handshake_timeout", "slow_client_timeout", "failed_handshakes_per_minute"):
        if name in values:
            _positive(f"websocket.{name}", values[name])
    for name in ("ping_interval", "ping_timeout"):  # 0 = no server pings
        if name in values:
            _positive(f"websocket.{name}", values[name], allow_zero=True)
            if 0 < values[name] < 1:  # autobahn's timers run on whole seconds
                raise ConfigError(f"websocket.{name}: must be 0 (off) or at least 1 second, got {values[name]}")
    return WebSocketConfig(tokens=tokens, **values)


def _cluster(raw: Mapping[str, Any]) -> ClusterConfig:
    values = _simple(ClusterConfig, "cluster", raw)
    feed = values.get("feed", "auto")
    if feed not in ("auto", "local"):
        raise ConfigError(f"cluster.feed: expected 'auto' or 'local', got {feed!r}")
    for name in ("heartbeat_interval", "lease_seconds"):
        if name in values:
            _positive(f"cluster.{name}", values[name])
    heartbeat = values.get("heartbeat_interval", ClusterConfig().heartbeat_interval)
    lease = values.get("lease_seconds", ClusterConfig().lease_seconds)
    if lease < 2 * heartbeat:
        raise ConfigError(f"cluster.lease_seconds: {lease:g} must be at least twice cluster.heartbeat_interval "
                          f"({heartbeat:g}), or a live instance could lose its lease between two heartbeats")
    return ClusterConfig(**values)


def _runtime(raw: Mapping[str, Any]) -> RuntimeConfig:
    values = _simple(RuntimeConfig, "runtime", raw)
    threshold = values.get("gc_threshold", RuntimeConfig.gc_threshold)
    if threshold != 0 and not 100 <= threshold <= 10_000_000:
        raise ConfigError(f"runtime.gc_threshold: expected 0 (Python's default) or 100 to 10000000, got {threshold}")
    return RuntimeConfig(**values)


def build(raw: Mapping[str, Any], drivers: Mapping[str, Any] | None = None, path: str = "") -> Config:
    """Turn a parsed TOML document into a :class:`Config`.

    ``drivers`` maps driver names to driver plugins; with it, listener drivers,
    transports and driver options are checked.
    """
    sections: dict[str, Callable[[Mapping[str, Any]], Any]] = {
        "mongodb": _mongodb,
        "embedded": lambda r: EmbeddedConfig(**_simple(EmbeddedConfig, "embedded", r)),
        "websocket": _websocket,
        "map": lambda r: MapConfig(**_simple(MapConfig, "map", r)),
        "web": lambda r: WebConfig(**_simple(WebConfig, "web", r)),
        "persistence": lambda r: PersistenceConfig(**_simple(PersistenceConfig, "persistence", r)),
        "retention": lambda r: RetentionConfig(**_simple(RetentionConfig, "retention", r)),
        "commands": lambda r: CommandsConfig(**_simple(CommandsConfig, "commands", r)),
        "logging": lambda r: LoggingConfig(**_simple(LoggingConfig, "logging", r)),
        "rejected_frames": lambda r: RejectedFramesConfig(**_simple(RejectedFramesConfig, "rejected_frames", r)),
        "history": lambda r: HistoryConfig(**_simple(HistoryConfig, "history", r)),
        "stats": lambda r: StatsConfig(**_simple(StatsConfig, "stats", r)),
        "cluster": _cluster,
        "runtime": _runtime,
    }
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name == "listener":
            if not isinstance(value, list):
                raise ConfigError("listener: expected an array of tables ([[listener]])")
            values["listeners"] = tuple(_listener(i, item, drivers) for i, item in enumerate(value))
        elif name in sections:
            values[name] = sections[name](_table(name, value))
        else:
            raise ConfigError(f"{name}: unknown section")
    config = Config(path=path, **values)
    _check_ports(config)
    _check_values(config)
    if drivers is not None:
        _check_driver_options(config, drivers)
    return config


def _check_driver_options(config: Config, drivers: Mapping[str, Any]) -> None:
    """Let each driver build its codec once, so a bad option value fails at startup, not per connection."""
    for index, listener in enumerate(config.listeners):
        build_codec = getattr(drivers[listener.driver],
                              "stream_codec" if listener.transport == "tcp" else "datagram_codec", None)
        if not callable(build_codec):
            continue
        try:
            build_codec(listener)
        except (ValueError, TypeError, KeyError) as e:
            raise ConfigError(f"listener[{index}]: {e}") from None


def _check_ports(config: Config) -> None:
    used: dict[tuple[str, int], str] = {}
    for index, listener in enumerate(config.listeners):
        slot = (listener.transport, listener.port)
        if listener.port != 0 and slot in used:
            raise ConfigError(
                f"listener[{index}].port: {listener.transport} port {listener.port} is already used by {used[slot]}"
            )
        used[slot] = f"listener[{index}]"
    ws = ("tcp", config.websocket.port)
    if ws in used and config.websocket.port != 0:
        raise ConfigError(f"websocket.port: {config.websocket.port} is already used by {used[ws]}")
    if config.mongodb.embedded and config.embedded.port != 0 and config.websocket.port == config.embedded.port:
        raise ConfigError(f"websocket.port: {config.websocket.port} is already used by embedded.port")
    if config.mongodb.embedded and ("tcp", config.embedded.port) in used and config.embedded.port != 0:
        raise ConfigError(f"embedded.port: {config.embedded.port} is already used by {used[('tcp', config.embedded.port)]}")


def _check_values(config: Config) -> None:
    p = config.persistence
    _positive("persistence.batch_size", p.batch_size)
    _positive("persistence.batch_interval_ms", p.batch_interval_ms, allow_zero=True)
    _positive("persistence.queue_limit", p.queue_limit)
    _positive("persistence.store_timeout", p.store_timeout)
    _positive("retention.days", config.retention.days, allow_zero=True)
    _positive("retention.interval", config.retention.interval)
    if config.retention.expiry not in ("auto", "server", "waygps"):
        raise ConfigError(f"retention.expiry: expected auto, server or waygps, got {config.retention.expiry!r}")
    _positive("rejected_frames.size_mb", config.rejected_frames.size_mb)
    _positive("rejected_frames.max_bytes", config.rejected_frames.max_bytes)
    _positive("rejected_frames.queue", config.rejected_frames.queue)
    c = config.commands
    _positive("commands.poll_interval", c.poll_interval)
    _positive("commands.ack_timeout", c.ack_timeout)
    _positive("commands.max_attempts", c.max_attempts)
    _positive("commands.expiry_hours", c.expiry_hours)
    _positive("commands.block_max_speed_kmh", c.block_max_speed_kmh, allow_zero=True)
    _positive("commands.block_speed_max_age", c.block_speed_max_age)
    if config.logging.format not in ("text", "json"):
        raise ConfigError(f"logging.format: expected 'text' or 'json', got {config.logging.format!r}")
    if config.logging.level not in ("debug", "info", "warn", "error"):
        raise ConfigError(f"logging.level: expected debug, info, warn or error, got {config.logging.level!r}")
    _port("embedded.port", config.embedded.port)
    h = config.history
    _positive("history.moving_speed_kmh", h.moving_speed_kmh)
    _positive("history.min_stop_seconds", h.min_stop_seconds, allow_zero=True)
    _positive("history.max_gap_seconds", h.max_gap_seconds)
    _positive("history.min_trip_distance_m", h.min_trip_distance_m, allow_zero=True)
    _positive("history.batch_size", h.batch_size)
    _positive("stats.flush_interval", config.stats.flush_interval)
    if not config.stats.collection or "$" in config.stats.collection:
        raise ConfigError(f"stats.collection: not a collection name: {config.stats.collection!r}")


# --- environment -----------------------------------------------------------


def read_dotenv(path: Path) -> dict[str, str]:
    """``KEY=value`` lines of a ``.env`` file (``#`` comments, optional quotes, optional ``export``)."""
    values: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return values
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from None
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not name.replace("_", "").isalnum():
            raise ConfigError(f"{path}:{number}: expected KEY=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values


def apply_environment(raw: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Secrets and the store's URI from the environment win over the file.

    ``WAYGPS_MONGODB_URI``, ``WAYGPS_MONGODB_DATABASE`` and
    ``WAYGPS_WEBSOCKET_TOKEN`` (one more token that sees every device) and
    ``WAYGPS_WEB_METRICS_TOKEN`` (``[web] metrics_token``).
    """
    raw = dict(raw)
    mongodb = dict(raw.get("mongodb", {}))
    if f"{ENV_PREFIX}MONGODB_URI" in env:
        mongodb["uri"] = env[f"{ENV_PREFIX}MONGODB_URI"]
    if f"{ENV_PREFIX}MONGODB_DATABASE" in env:
        mongodb["database"] = env[f"{ENV_PREFIX}MONGODB_DATABASE"]
    if mongodb:
        raw["mongodb"] = mongodb
    metrics_token = env.get(f"{ENV_PREFIX}WEB_METRICS_TOKEN")
    if metrics_token:
        raw["web"] = {**dict(raw.get("web", {})), "metrics_token": metrics_token}
    token = env.get(f"{ENV_PREFIX}WEBSOCKET_TOKEN")
    if token:
        websocket = dict(raw.get("websocket", {}))
        websocket["tokens"] = list(websocket.get("tokens", [])) + [{"token": token, "devices": "*"}]
        raw["websocket"] = websocket
    return raw


def load(path: str | os.PathLike[str], drivers: Mapping[str, Any] | None = None,
         env: Mapping[str, str] | None = None) -> Config:
    """Read the file, the ``.env`` beside it and the environment (the environment wins)."""
    file = Path(path)
    try:
        with file.open("rb") as handle:
            raw = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{file}: is a directory, not a configuration file") from None
    except OSError as e:
        raise ConfigError(f"{file}: cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{file}: not valid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{file}: not UTF-8 text (byte {e.start}): not a TOML file") from None
    merged = dict(read_dotenv(file.parent / ".env"))
    merged.update(os.environ if env is None else env)
    raw = apply_environment(raw, merged)
    return build(raw, drivers, path=str(file))
