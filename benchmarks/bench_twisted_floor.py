"""What Twisted alone costs per acknowledged report: the floor under WayGPS's CPU per report.

Run: .venv/bin/python benchmarks/bench_twisted_floor.py [--devices 1000] [--duration 20] [--hold-ms 150] [--direct]
     [--reactor waygps|default]

The same devices as ``bench_store.py`` (c) and ``bench_cpu_per_report.py``
(the simulator's GV50 fleet in another process, closed loop) against a bare
Twisted TCP server in this process that does nothing but what any server
must: read each frame, take its count, and write ``+SACK:<count>$``. The
answers are held and written every ``--hold-ms`` (like a store batch, so the
reactor sees the same pattern of reads and bursts of writes as under
WayGPS; ``0`` answers at once). ``--direct`` writes each answer with
``waygps.drivers.immediate.write_now`` (sent in the call on an idle
connection, as WayGPS's TCP adapter and the simulator do) instead of
Twisted's queued ``transport.write``. Printed: the server's user + system CPU per
acknowledged report in the measurement window. WayGPS's own figure minus
this one is what decoding, storing, publishing and acknowledging in order
cost on top of the event loop.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from bench_store import _Loadgen  # noqa: E402  (bench_store puts src/ on the path)
from benchlib import add_reactor_option, install_reactor, machine, raise_fd_limit


class _NoStore:
    def cpu(self) -> None:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--hold-ms", type=float, default=150.0)
    parser.add_argument("--direct", action="store_true", help="answer with write_now instead of transport.write")
    add_reactor_option(parser)
    args = parser.parse_args(argv)
    reactor_name = install_reactor(args.reactor)
    raise_fd_limit()
    from twisted.internet import protocol, reactor, task

    held: list[tuple[Any, bytes]] = []
    if args.direct:
        from waygps.drivers.immediate import write_now as send
    else:
        def send(transport: Any, data: bytes) -> None:
            transport.write(data)

    class Sack(protocol.Protocol):
        def dataReceived(self, data: bytes) -> None:
            for frame in data.split(b"$"):
                if frame:
                    answer = b"+SACK:" + frame.rsplit(b",", 1)[-1] + b"$"
                    if args.hold_ms:
                        held.append((self.transport, answer))
                    else:
                        send(self.transport, answer)

    def answer() -> None:
        batch = held[:]
        del held[:]
        for transport, data in batch:
            send(transport, data)

    factory = protocol.ServerFactory()
    factory.protocol = Sack
    port = reactor.listenTCP(0, factory, backlog=2048, interface="127.0.0.1")
    if args.hold_ms:
        task.LoopingCall(answer).start(args.hold_ms / 1000.0)
    print(machine(), flush=True)
    gen = _Loadgen(_NoStore())  # type: ignore[arg-type]
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_store.py")
    command = [sys.executable, script, "--loadgen", f"127.0.0.1:{port.getHost().port}", "--devices",
               str(args.devices), "--duration", str(args.duration), "--warmup", str(args.warmup)]
    reactor.spawnProcess(gen.protocol, sys.executable, command, env=dict(os.environ))
    outcome: dict[str, Any] = {}

    def ended(code: int) -> None:
        outcome["code"] = code
        reactor.stop()

    gen.done.addCallback(ended)
    reactor.run()
    if outcome.get("code") != 0 or "ends" not in gen.samples:
        print(f"load generator failed: {gen.err.decode()[-500:]}")
        return 1
    import json

    result = json.loads(gen.out.decode().strip().splitlines()[-1])
    (own0, _), (own1, _) = gen.samples["begins"], gen.samples["ends"]
    acked = max(1, result["acked"])
    user, system = (own1[0] - own0[0]) / acked * 1e6, (own1[1] - own0[1]) / acked * 1e6
    print(f"\n{machine()}")
    how = "write_now" if args.direct else "transport.write"
    print(f"bare Twisted SACK server ({how}), answers {'held ' + format(args.hold_ms, 'g') + ' ms' if args.hold_ms else 'at once'}; "
          f"{args.devices} simulated GV50 devices: {result['acked']:,} reports acknowledged in "
          f"{result['seconds']:.1f} s ({result['acked'] / result['seconds']:,.0f}/s)")
    print(f"server process: {user + system:5,.1f} us CPU per acknowledged report ({user:,.1f} user + {system:,.1f} system; "
          f"reactor {reactor_name})")
    print(f"load generator: {result['loadgen_cpu_us']:5,.1f} us CPU per report")
    return 0


if __name__ == "__main__":
    sys.exit(main())
