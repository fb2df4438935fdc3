"""A device process for the SIGKILL fault test: fills its outbox up to a target and delivers it.

Usage: python tests/fault_device.py STATE_DIR PORT TARGET DEVICE_ID
Each start resumes from the outbox: the next hit gets ``outbox.next_seq``; the
process exits 0 once HQ has acknowledged every hit up to TARGET.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from agent.config import MqttConfig
from agent.messages import HIT_KIND, hit_body
from agent.pki import DEVICE_KEY, HqPublicKeys, load_ed25519_private
from agent.reads import Hit, Match, TrackedRead, WatchlistEntry
from agent.transport.outbox import PRIORITY_HIT, Outbox
from agent.transport.sealer import Sealer
from agent.transport.topics import Topics
from agent.transport.uplink import Uplink


def sample_hit(n: int, device: str) -> Hit:
    plate = f"{10000 + n}-B-6"
    read = TrackedRead(plate, "MA", 0.93, 1000.0 + n, 1001.0 + n, 4, (10, 20, 120, 30), n)
    entry = WatchlistEntry(plate, "stolen", f"case-{n}", 2)
    return Hit(device, read, Match(entry, "exact"), None, b"\xff\xd8jpeg\xff\xd9")


def main() -> int:
    state, port, target, device = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    keys = state / "keys"
    sealer = Sealer(device, load_ed25519_private(keys / DEVICE_KEY, "key"), HqPublicKeys.load(keys))
    config = MqttConfig(port=port, keepalive_s=5, ack_timeout_s=1.0, reconnect_max_s=1.0)
    topic = Topics(config.topic_prefix, device).hits
    with Outbox(state / "outbox.sqlite") as outbox:
        uplink = Uplink(config, sealer, outbox)
        uplink.start()
        while (seq := outbox.next_seq) <= target:
            body = hit_body(sample_hit(seq, device))
            outbox.put(HIT_KIND, topic, sealer.maker(HIT_KIND, topic, body), PRIORITY_HIT)
            uplink.wake()
            time.sleep(0.01)  # a hit every 10 ms: a busy street
        print("all queued", flush=True)
        while outbox.depth() > 0:
            time.sleep(0.05)
        uplink.stop()
    print("all delivered", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
