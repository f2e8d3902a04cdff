"""The command service against the real embedded store, with fake device connections.

The service gets a ``task.Clock`` as its reactor (time and polling move only
when a test advances them); txmongo talks to the store over the real reactor.
Devices are :class:`FakeConnection` objects that record what they were given
and answer with GV50-like or Teltonika-like bytes.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pymongo
import pytest
import pytest_twisted
from twisted.internet import task
from twisted.internet.defer import inlineCallbacks
from zope.interface import implementer

from waygps.bus import EventBus
from waygps.commands.model import Command, UnsupportedCommand
from waygps.commands.service import CommandService
from waygps.config import CommandsConfig, MongoConfig
from waygps.events import CommandAck, CommandStatus, DeviceConnected, DeviceDisconnected, Position
from waygps.interfaces import IDeviceConnection
from waygps.store.connection import MongoStore

START = 1_790_000_000.0  # 2026-09-21, so dates look real

GV50_WORDS = {"block": "OUT", "unblock": "OUT", "reboot": "RTO", "request_position": "RTO",
              "set_server": "SRI", "set_apn": "BSI"}


@implementer(IDeviceConnection)
class FakeConnection:
    """A device channel: records each command and returns bytes shaped like its protocol's."""

    def __init__(self, imei: str, protocol: str = "gv50", peer: str = "10.0.0.1:40001",
                 listener: str = "gv50-tcp-0", unsupported: tuple[str, ...] = ()) -> None:
        self.imei = imei
        self.protocol = protocol
        self.peer = peer
        self.listener = listener
        self.transport_name = "tcp"
        self.unsupported = unsupported
        self.sent: list[Command] = []
        self.closed: str | None = None

    def send_command(self, command: Command) -> bytes:
        if command.type in self.unsupported:
            raise UnsupportedCommand(f"{command.type} is not available on this device")
        self.sent.append(command)
        if self.protocol == "gv50":
            word = GV50_WORDS.get(command.type, "XXX")
            return f"AT+GT{word}=gv50,{command.type},{command.serial}$".encode()
        return b"\x00\x00\x00\x00" + command.type.encode() + b"\x01\xff"

    def close(self, reason: str) -> None:
        self.closed = reason


class FakeSessions:
    """The registry as the command service sees it, publishing session events like the real one."""

    def __init__(self, bus: EventBus, clock: task.Clock) -> None:
        self.bus = bus
        self.clock = clock
        self.current: dict[str, Any] = {}

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.seconds(), timezone.utc)

    def get(self, imei: str) -> Any:
        return self.current.get(imei)

    def connections(self) -> list[Any]:
        return list(self.current.values())

    def connect(self, connection: FakeConnection, speed: float | None = 0.0) -> FakeConnection:
        """Connect ``connection``; like a real device it reports a position at once (``speed``, km/h;
        ``None``: no report, so the speed guard knows nothing of its movement)."""
        self.current[connection.imei] = connection
        now = self.now()
        self.bus.publish(DeviceConnected(imei=connection.imei, protocol=connection.protocol, server_time=now,
                                         peer=connection.peer, transport="tcp", listener=connection.listener))
        if speed is not None:
            self.bus.publish(Position(imei=connection.imei, protocol=connection.protocol, device_time=now,
                                      server_time=now, event="connect", key=f"c{now.timestamp()}", valid=True,
                                      latitude=-17.7, longitude=-62.9, speed=speed))
        return connection

    def disconnect(self, connection: FakeConnection, reason: str = "closed by device") -> None:
        if self.current.get(connection.imei) is connection:
            del self.current[connection.imei]
            self.bus.publish(DeviceDisconnected(imei=connection.imei, protocol=connection.protocol,
                                                server_time=self.now(), peer=connection.peer, reason=reason,
                                                listener=connection.listener))


class Harness:
    def __init__(self, mongo_uri: str, db_name: str) -> None:
        self.mongo_uri = mongo_uri
        self.db_name = db_name
        self.clock = task.Clock()
        self.clock.advance(START)
        self.bus = EventBus()
        self.events: list[Any] = []
        self.bus.subscribe(self.events.append)
        self.sessions = FakeSessions(self.bus, self.clock)
        self.client = pymongo.MongoClient(mongo_uri, tz_aware=True, serverSelectionTimeoutMS=5000)
        self.db = self.client[db_name]
        self.stores: list[MongoStore] = []
        self.services: list[CommandService] = []

    @property
    def commands(self) -> Any:
        return self.db["Comando"]

    @property
    def vehicles(self) -> Any:
        return self.db["Veiculo"]

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.seconds(), timezone.utc)

    def config(self, **values: Any) -> CommandsConfig:
        defaults = dict(poll_interval=2.0, ack_timeout=60.0, max_attempts=3, expiry_hours=24.0,
                        block_max_speed_kmh=20.0)
        defaults.update(values)
        return CommandsConfig(**defaults)

    @inlineCallbacks
    def start(self, instance_id: str = "instance-a", sessions: Any = None, **values: Any) -> Any:
        store = MongoStore(MongoConfig(uri=self.mongo_uri, database=self.db_name), self.mongo_uri)
        store.connect()
        self.stores.append(store)
        service = CommandService(store, sessions or self.sessions, self.bus, self.config(**values), self.clock,
                                 instance_id=instance_id)
        yield service.startService()
        yield service.idle()
        self.services.append(service)
        return service

    @inlineCallbacks
    def stop(self, service: CommandService) -> Any:
        yield service.stopService()
        index = self.services.index(service)
        self.services.pop(index)
        store = self.stores.pop(index)
        yield store.close()

    @inlineCallbacks
    def settle(self) -> Any:
        """Wait until every running service has finished what it started."""
        for _ in range(5):
            for service in list(self.services):
                yield service.idle()
            if not any(service._work for service in self.services):
                return

    @inlineCallbacks
    def advance(self, seconds: float, step: float | None = None) -> Any:
        """Move the clock in steps (each poll runs and finishes before the next step)."""
        step = step or min(s.config.poll_interval for s in self.services)
        left = seconds
        while left > 1e-9:
            move = min(step, left)
            self.clock.advance(move)
            left -= move
            yield self.settle()

    def vehicle(self, imei: str, **fields: Any) -> None:
        self.vehicles.update_one({"IMEI": imei}, {"$set": {"IMEI": imei, **fields}}, upsert=True)

    def position(self, imei: str, speed: float, valid: bool = True) -> None:
        now = self.now()
        self.bus.publish(Position(imei=imei, protocol="gv50", device_time=now, server_time=now, event="GTFRI",
                                  key=f"k{now.timestamp()}", valid=valid, latitude=-17.7, longitude=-62.9,
                                  speed=speed))

    def ack(self, imei: str, *, serial: str | None = None, command_type: str | None = None,
            command_id: str | None = None, success: bool = True, response: str = "OK",
            protocol: str = "gv50") -> None:
        self.bus.publish(CommandAck(imei=imei, protocol=protocol, server_time=self.now(), success=success,
                                    response=response, serial=serial, command_type=command_type,
                                    command_id=command_id))

    def statuses(self, command_id: Any = None) -> list[tuple[str, str]]:
        return [(e.command_type, e.status) for e in self.events
                if isinstance(e, CommandStatus) and (command_id is None or e.command_id == str(command_id))]

    def only_command(self, imei: str) -> dict[str, Any]:
        docs = list(self.commands.find({"IMEI": imei}))
        assert len(docs) == 1, docs
        return docs[0]

    def close(self) -> None:
        for service in self.services:
            pytest_twisted.blockon(service.stopService())
        for store in self.stores:
            pytest_twisted.blockon(store.close())
        self.client.close()


@pytest.fixture
def harness(mongo_uri: str, mongo_db_name: str) -> Any:
    h = Harness(mongo_uri, mongo_db_name)
    yield h
    h.close()
