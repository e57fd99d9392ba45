"""A TCP fault proxy between a client and a server on 127.0.0.1: latency and jitter, a bandwidth
cap, stalled, reset and cut connections, and a black hole; seeded, changed while it runs, counted.

    with NetProxy(("127.0.0.1", server_port), seed=7) as proxy:   # in-process, in a thread
        connect_to(proxy.address)
        proxy.update(latency=0.01, jitter=0.005)
        proxy.update(reset=1.0)                  # every connection, open ones too, is reset
        proxy.wait(lambda c: c.reset >= 1, 10)   # counters to wait on instead of sleeping
        proxy.clear()

    python -m chaos.netproxy --listen 127.0.0.1:0 --to 127.0.0.1:PORT --control SOCK [--seed N]
    ControlClient(SOCK).update(blackhole=True)  # from another process

What each fault does: `chaos.netproxy.faults`; how the proxy does it: `chaos.netproxy.engine`.
"""

from chaos.netproxy.control import ControlClient
from chaos.netproxy.counters import Counters
from chaos.netproxy.faults import Faults
from chaos.netproxy.proxy import NetProxy

__all__ = ["ControlClient", "Counters", "Faults", "NetProxy"]
