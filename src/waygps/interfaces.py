"""Every interface of WayGPS, in one place.

Services never import drivers and drivers know services only through these
interfaces. A third-party driver implements :class:`IDriver` (and usually a
sans-IO codec shaped like :class:`IStreamCodec`) and ships it as a module in
``twisted/plugins/``; see ``docs/writing-a-driver.md``.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IEventSink(Interface):
    """Where drivers hand their events: the persistence service."""

    def deliver(events):
        """Store a sequence of device events.

        Returns a Deferred that fires (with ``None``) once every event is
        durably stored, or fails if they could not be. A driver acknowledges
        its device only when this Deferred has fired.
        """

    def watch(producer):
        """Register an ``IPushProducer`` (a device transport) for back-pressure.

        While the sink's queue is over its bound it calls ``pauseProducing``
        on every watched producer, and ``resumeProducing`` when it drains.
        """

    def unwatch(producer):
        """Forget a producer registered with :meth:`watch`."""


class INotifyingSink(IEventSink):
    """A sink that can also answer through a plain callable (the built-in device adapter's path).

    A Deferred per report is a measurable share of the CPU a report costs
    (docs/benchmarks.md); the adapter uses :meth:`submit` when the sink offers
    it, ``deliver`` otherwise. Plugins need neither: they hand events to the adapter.
    """

    def submit(events, notify):
        """Store ``events`` like ``deliver``; call ``notify(error)`` exactly once instead of firing a Deferred.

        ``error`` is ``None`` once every event is durably stored, else the
        exception that says why not. ``notify`` may be called before ``submit``
        returns; an exception it raises is logged, never propagated.
        """


class IEventPublisher(Interface):
    """In-process publication of what happened (stored positions, sessions, commands)."""

    def publish(event):
        """Hand ``event`` to every subscriber; a failing subscriber is logged, never raised."""

    def subscribe(callback):
        """Call ``callback(event)`` for every published event; returns an unsubscribe callable."""


class IDeviceConnection(Interface):
    """One live channel to one identified device (a TCP connection, or a UDP peer)."""

    imei = Attribute("The device's identity (str).")
    protocol = Attribute("The driver name (str).")
    peer = Attribute("'host:port' of the device (str).")
    listener = Attribute("The name of the listener that holds the connection (str).")
    transport_name = Attribute("'tcp' or 'udp'.")

    def send_command(command):
        """Encode ``command`` (a ``waygps.commands.model.Command``) and write it.

        Returns the bytes written. Raises ``UnsupportedCommand`` when the
        driver cannot express it.
        """

    def expects_answer(command):
        """False when the device never acknowledges this command (Teltonika ``cpureset``):
        the command service then confirms it once written instead of re-sending it."""

    def cuts_engine(command):
        """True when ``command``, as this connection's codec encodes it, switches the engine cut-off
        (immobiliser) output on: the command service then holds it behind the speed guard.
        ``block`` always counts."""

    def close(reason):
        """Close the channel (replaced by a newer connection, idle, refused)."""


class ISessionRegistry(Interface):
    """Which device is on which connection of this instance."""

    def authorize(imei, listener):
        """Deferred[bool]: may this device use this listener (the allow-list)?"""

    def attach(connection):
        """Bind ``connection.imei`` to ``connection``; an older connection of the same device is closed."""

    def detach(connection, reason, error=""):
        """The connection closed or timed out: forget it if it is still the device's current one.

        ``error`` is the reason again when the connection ended on a protocol error.
        """

    def activity(connection, now):
        """A frame arrived on ``connection`` at ``now`` (keeps UDP devices online)."""

    def get(imei):
        """The current ``IDeviceConnection`` of ``imei`` on this instance, or ``None``."""


class IStreamCodec(Interface):
    """The sans-IO heart of a stream (TCP) driver: bytes in, actions out.

    Implementations import nothing from Twisted. ``now`` is the receive time
    (aware UTC ``datetime``); the codec never reads a clock.
    """

    def receive(data, now):
        """Feed received bytes; returns a list of ``waygps.actions`` actions."""

    def encode_command(command, now):
        """Bytes that carry ``command`` to the device (raise ``UnsupportedCommand``).

        Optional companions: ``expects_answer(command) -> bool`` (default True), and
        ``cuts_engine(command) -> bool`` (default: ``command.type == "block"``), which must
        say True for every command that switches an output able to stop the engine (a custom
        command that sets the immobiliser relay, too): those pass the speed guard.
        """


class IDatagramCodec(Interface):
    """The sans-IO heart of a datagram (UDP) driver: one datagram in, actions out."""

    def receive_datagram(data, now):
        """Decode one datagram; returns a list of actions (replies go to its sender)."""

    def encode_command(command, now):
        """Bytes that carry ``command`` to the device (raise ``UnsupportedCommand``)."""


class IDriver(Interface):
    """A device protocol, found by ``twisted.plugin.getPlugins(IDriver)``.

    One listener of the configuration names a driver; the service calls the
    factory methods once per listener with a ``waygps.drivers.base.DriverContext``
    (sink, sessions, listener configuration, reactor).
    """

    name = Attribute("Short unique name used in the configuration: 'gv50', 'teltonika', ...")
    description = Attribute("One line for `waygps drivers`.")
    transports = Attribute("frozenset of the transports it serves: {'tcp'}, {'tcp', 'udp'}.")
    options = Attribute(
        "Mapping of listener option name -> default value for the driver's own listener keys; "
        "the value's type is the type the configuration must have."
    )

    def tcp_factory(context):
        """An ``IProtocolFactory`` for a TCP listener."""

    def udp_protocol(context):
        """A ``DatagramProtocol`` for a UDP listener."""

    def check_command(command):
        """Raise ``UnsupportedCommand`` with the reason when the driver would refuse ``command``
        (``waygps command send`` and the ``Comando`` intake refuse it at once). Optional: without
        it a command is checked when it is written. ``CodecDriver`` provides it."""

    def cuts_engine(command):
        """True when ``command`` switches an output that can stop the engine (see ``IStreamCodec``).
        Optional (``CodecDriver`` asks its codec); the speed guard asks the connection's codec."""

    def decode(data, now, transport):
        """Offline decoding for `waygps decode`: a list of events and rejections for captured bytes."""


class IStatsRecorder(Interface):
    """Where the daily reception statistics are counted (``waygps.stats``).

    Drivers call it next to their metrics; what the bus carries (stored
    reports, sessions, command statuses) the collector reads itself.
    """

    def received(listener, events):
        """A frame of ``events`` from a device on ``listener`` goes to the store."""

    def rejected(listener, reason):
        """A frame on ``listener`` was thrown away for ``reason``."""

    def flagged(listener, reason):
        """A frame on ``listener`` was kept but flagged for ``reason``."""

    def duplicate(imei, protocol):
        """A re-sent report was recognised as already stored."""
