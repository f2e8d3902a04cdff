"""Configuration: the fixed names, defaults, environment, and one-line errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from waygps.config import ConfigError, build, load, read_dotenv


class FakeDriver:
    def __init__(self, name: str, transports=("tcp", "udp"), options=None) -> None:
        self.name = name
        self.transports = frozenset(transports)
        self.options = options or {}


DRIVERS = {
    "gv50": FakeDriver("gv50", options={"password": "gv50"}),
    "teltonika": FakeDriver("teltonika"),
    "tcponly": FakeDriver("tcponly", transports=("tcp",)),
}

FULL = """
[mongodb]
uri = "mongodb://db1,db2/?replicaSet=rs0"
database = "fleet"
[mongodb.collections]
positions = "P"
vehicles = "V"
commands = "C"
[embedded]
data_dir = "var/db"
port = 27018
[[listener]]
driver = "gv50"
transport = "tcp"
host = "0.0.0.0"
port = 8081
idle_timeout = 1800
max_connections = 10000
password = "secret1"
[websocket]
port = 8000
path = "/ws/gps/"
[[websocket.tokens]]
token = "secret"
devices = "*"
[[websocket.tokens]]
token_sha256 = "%s"
devices = ["123456789012345"]
""" % hashlib.sha256(b"other").hexdigest()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "waygps.toml"
    path.write_text(text)
    return path


def test_full_example_reads_every_fixed_name(tmp_path: Path) -> None:
    config = load(write(tmp_path, FULL), DRIVERS, env={})
    assert config.mongodb.uri == "mongodb://db1,db2/?replicaSet=rs0"
    assert config.mongodb.database == "fleet"
    assert (config.mongodb.collections.positions, config.mongodb.collections.vehicles,
            config.mongodb.collections.commands) == ("P", "V", "C")
    assert config.embedded.port == 27018
    (listener,) = config.listeners
    assert (listener.driver, listener.transport, listener.host, listener.port) == ("gv50", "tcp", "0.0.0.0", 8081)
    assert listener.idle_timeout == 1800.0 and listener.max_connections == 10000
    assert listener.option("password") == "secret1"
    assert config.websocket.path == "/ws/gps/"
    everyone, one = config.websocket.tokens
    assert everyone.token_sha256 == hashlib.sha256(b"secret").hexdigest() and everyone.allows("999")
    assert one.allows("123456789012345") and not one.allows("999")


def test_defaults_are_the_contract_names() -> None:
    config = build({}, DRIVERS)
    assert config.mongodb.embedded
    assert (config.mongodb.collections.positions, config.mongodb.collections.vehicles,
            config.mongodb.collections.commands) == ("DadosVeiculo", "Veiculo", "Comando")
    assert config.retention.days == 90
    assert config.persistence.batch_size == 500 and config.persistence.batch_interval_ms == 20


def test_driver_options_get_their_defaults() -> None:
    config = build({"listener": [{"driver": "gv50", "port": 1}]}, DRIVERS)
    assert config.listeners[0].option("password") == "gv50"


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"mongodb": {"uri": "x", "colour": 1}}, "mongodb.colour: unknown key"),
        ({"nonsense": {}}, "nonsense: unknown section"),
        ({"listener": [{"driver": "nope", "port": 1}]}, "listener[0].driver: unknown driver 'nope'"),
        ({"listener": [{"driver": "gv50", "port": "8081"}]}, "listener[0].port: expected an integer, got '8081'"),
        ({"listener": [{"driver": "gv50", "port": 8081, "mystery": 1}]}, "listener[0].mystery: unknown key"),
        ({"listener": [{"driver": "gv50", "port": 1, "password": 5}]}, "listener[0].password: expected a string"),
        ({"listener": [{"driver": "gv50", "port": 8081}, {"driver": "teltonika", "port": 8081}]},
         "listener[1].port: tcp port 8081 is already used by listener[0]"),
        ({"listener": [{"driver": "tcponly", "port": 1, "transport": "udp"}]},
         "listener[0].transport: driver 'tcponly' does not serve udp"),
        ({"listener": [{"driver": "gv50", "port": 70000}]}, "listener[0].port: not a port number: 70000"),
        ({"listener": [{"port": 1}]}, "listener[0].driver: missing"),
        ({"listener": [{"driver": "gv50", "port": 1, "idle_timeout": -5}]}, "listener[0].idle_timeout: must be"),
        ({"listener": [{"driver": "gv50", "port": 1, "backlog": 0}]}, "listener[0].backlog: must be greater"),
        ({"listener": [{"driver": "gv50", "port": 1, "backlog": "many"}]}, "listener[0].backlog: expected an integer"),
        ({"websocket": {"tokens": [{"devices": "*"}]}}, "websocket.tokens[0]: give exactly one of token"),
        ({"websocket": {"tokens": [{"token": "a", "devices": 5}]}}, "websocket.tokens[0].devices"),
        ({"persistence": {"batch_size": 0}}, "persistence.batch_size: must be greater than zero"),
        ({"listener": {"driver": "gv50"}}, "listener: expected an array of tables"),
        ({"logging": {"format": "xml"}}, "logging.format: expected 'text' or 'json'"),
        ({"runtime": {"gc_threshold": 5}}, "runtime.gc_threshold: expected 0 (Python's default) or 100"),
        ({"runtime": {"gc_freeze": "yes"}}, "runtime.gc_freeze: expected a boolean"),
    ],
)
def test_bad_config_names_the_key(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        build(raw, DRIVERS)
    text = str(error.value)
    assert message in text
    assert "\n" not in text


def test_two_transports_may_share_a_port_number() -> None:
    config = build({"listener": [{"driver": "teltonika", "port": 8080},
                                 {"driver": "teltonika", "port": 8080, "transport": "udp"}]}, DRIVERS)
    assert [l.transport for l in config.listeners] == ["tcp", "udp"]
    assert config.listeners[0].name != config.listeners[1].name


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load(tmp_path / "missing.toml", DRIVERS, env={})
    with pytest.raises(ConfigError, match="is a directory"):
        load(tmp_path, DRIVERS, env={})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(write(tmp_path, "[mongodb\n"), DRIVERS, env={})


def test_environment_and_dotenv_override_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[mongodb]\nuri = "mongodb://file/"\n')
    (tmp_path / ".env").write_text("# secrets\nWAYGPS_MONGODB_URI='mongodb://dotenv/'\nexport WAYGPS_WEBSOCKET_TOKEN=tok\n")
    config = load(path, DRIVERS, env={})
    assert config.mongodb.uri == "mongodb://dotenv/"
    assert config.websocket.tokens[-1].token_sha256 == hashlib.sha256(b"tok").hexdigest()
    config = load(path, DRIVERS, env={"WAYGPS_MONGODB_URI": "mongodb://env/"})
    assert config.mongodb.uri == "mongodb://env/"
    config = load(path, DRIVERS, env={"WAYGPS_MONGODB_URI": ""})
    assert config.mongodb.embedded


def test_dotenv_syntax_error_names_the_line(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("GOOD=1\nthis is not an assignment\n")
    with pytest.raises(ConfigError, match=r"\.env:2: expected KEY=value"):
        read_dotenv(tmp_path / ".env")


def test_example_config_is_valid() -> None:
    from waygps.drivers import find_drivers

    example = Path(__file__).parents[2] / "examples" / "waygps.toml"
    config = load(example, find_drivers(), env={})
    ports = {(l.driver, l.transport): l.port for l in config.listeners}
    assert ports[("teltonika", "tcp")] == 8080
    assert ports[("gv50", "tcp")] == 8081
    assert ports[("generic", "tcp")] == 8082
    assert config.websocket.port == 8000 and config.websocket.path == "/ws/gps/"
    assert config.mongodb.embedded


def test_a_bad_driver_option_value_fails_at_load_time() -> None:
    from waygps.drivers import find_drivers

    with pytest.raises(ConfigError) as error:
        build({"listener": [{"driver": "generic", "port": 1, "speed_unit": "furlongs"}]}, find_drivers())
    assert str(error.value).startswith("listener[0]: ") and "speed_unit: expected one of" in str(error.value)


def test_a_file_that_is_not_text_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "waygps.toml"
    path.write_bytes(b"\xff\xfe[mongodb]\n")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load(path, DRIVERS, env={})
    path.write_text("[mongodb]\n")
    (tmp_path / ".env").write_bytes(b"WAYGPS_MONGODB_URI=\xff\n")
    with pytest.raises(ConfigError, match=r"\.env: not UTF-8 text"):
        load(path, DRIVERS, env={})


def test_websocket_port_may_not_be_the_embedded_store_port() -> None:
    with pytest.raises(ConfigError, match="websocket.port: 27018 is already used by embedded.port"):
        build({"websocket": {"port": 27018}}, DRIVERS)


def test_the_history_geo_index_is_off_unless_asked_for() -> None:
    assert build({}).mongodb.history_geo_index is False
    assert build({"mongodb": {"history_geo_index": True}}).mongodb.history_geo_index is True
    with pytest.raises(ConfigError, match="mongodb.history_geo_index"):
        build({"mongodb": {"history_geo_index": "yes"}})


def test_safe_defaults_web_on_loopback_listeners_on_every_address() -> None:
    config = build({"listener": [{"driver": "gv50", "port": 5004}]})
    assert config.websocket.host == "127.0.0.1"
    assert config.listeners[0].host == "0.0.0.0"
    assert config.web.metrics_token == ""
    assert build({"websocket": {"host": "0.0.0.0"}}).websocket.host == "0.0.0.0"


def test_web_metrics_token_from_file_or_environment(tmp_path: Path) -> None:
    path = write(tmp_path, '[web]\nmetrics_token = "from-file"\n')
    assert load(path, DRIVERS, env={}).web.metrics_token == "from-file"
    assert load(path, DRIVERS, env={"WAYGPS_WEB_METRICS_TOKEN": "from-env"}).web.metrics_token == "from-env"
    with pytest.raises(ConfigError, match="web.metrics_token: expected"):
        build({"web": {"metrics_token": 12}})
    with pytest.raises(ConfigError, match="web.other: unknown key"):
        build({"web": {"other": 1}})


def test_the_listen_backlog_is_per_listener_with_a_high_default() -> None:
    config = build({"listener": [{"driver": "gv50", "port": 8081},
                                 {"driver": "teltonika", "port": 8082, "backlog": 4096}]}, DRIVERS)
    assert [l.backlog for l in config.listeners] == [1024, 4096]


def test_a_tcp_listener_listens_with_its_configured_backlog() -> None:
    from twisted.internet.testing import MemoryReactor

    from waygps.drivers import find_drivers
    from waygps.drivers.base import DriverContext
    from waygps.service import ListenerService

    drivers = find_drivers()
    config = build({"listener": [{"driver": "gv50", "port": 8081, "backlog": 3000}]}, drivers)
    reactor = MemoryReactor()
    context = DriverContext(listener=config.listeners[0], sink=None, sessions=None, reactor=reactor)
    ListenerService(0, config.listeners[0], drivers["gv50"], context).listen()
    port, _factory, backlog, interface = reactor.tcpServers[0]
    assert (port, backlog, interface) == (8081, 3000, "0.0.0.0")
