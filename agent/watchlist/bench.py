"""``raqib bench watchlist``: a generated list of 1,000,000 entries through the device path.

The device runs the confidential path: lists arrive sealed (``agent.watchlist.sealed``)
and the cache is encrypted with the key HQ sends (``agent.watchlist.atrest``).

Figures:

- ``load_s``: from HQ's key message arriving to the list being matchable: open the
  key, decrypt the cache, re-verify signatures and hashes, index (the start-up
  path; the list was stored by an earlier full update); ``load_cpu_s`` the CPU
  time it used (what it costs when the machine is not shared);
- ``memory_mb``: resident memory the loaded list and index add;
- ``exact_us_p50/p99``: lookups of listed plates;
- ``fuzzy_us_p50/p99``: reads of listed plates with one confused character or
  one character missing; ``fuzzy_recall``: share of those that still hit;
- ``fuzzy_false_rate``: share of random unlisted, well-formed plates that get a
  fuzzy hit (the false-alarm price);
- ``edits_always_*``: the fuzzy figures again with one-edit matching on for
  well-formed reads too (``Matcher(edits="always")``), to show what that costs;
- ``delta_1000_ms``: verify, store and swap a delta of 1,000 changes (250
  replaced, 250 removed, 500 added): median of three successive deltas;
  ``delta_1000_ms_max`` the worst; ``delta_1000_cpu_ms`` the median CPU time
  (what the delta costs when the machine is not shared). Deltas arrive sealed;
- ``wrap_50000_s`` / ``wrap_50000_bytes``: HQ wrapping one bundle's content key
  for 50,000 device keys (one core) and the recipient table it adds to the
  bundle; ``unwrap_ms``: a device finding and opening its wrap in that table;
  ``sealed_bundle_bytes``: the sealed full list for one device.
"""

from __future__ import annotations

import gc
import random
import resource
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Final

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from agent.config import RaqibConfig
from agent.watchlist import sealed
from agent.watchlist.atrest import make_key_message
from agent.watchlist.content import ListEntry
from agent.watchlist.devicekeys import DeviceKeys
from agent.watchlist.manager import WatchlistManager, release_free_memory
from agent.watchlist.matcher import Matcher
from agent.watchlist.simulator import AdminSimulator

N_ENTRIES: Final = 1_000_000
N_DEVICES: Final = 50_000
DEVICE: Final = "bench-cam"
LETTERS: Final = "ABDHWTY"
REASONS: Final = ("stolen", "wanted", "missing person", "unpaid fines")


def _rss_mb() -> float:
    try:
        with Path("/proc/self/statm").open() as handle:
            pages = int(handle.read().split()[1])
        return pages * resource.getpagesize() / 1e6
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def _plate(rng: random.Random) -> str:
    if rng.random() < 0.7:
        return f"{rng.randint(1, 99999)}-{rng.choice(LETTERS)}-{rng.randint(1, 89)}"
    siv = "ABCDEFGHJKLMNPQRSTVWXYZ"
    left = rng.choice(siv) + rng.choice(siv)
    return f"{left}-{rng.randint(1, 999):03d}-{rng.choice(siv)}{rng.choice(siv)}"


def generate_entries(n: int, seed: int = 7) -> list[ListEntry]:
    rng = random.Random(seed)
    plates: set[str] = set()
    while len(plates) < n:
        plates.add(_plate(rng))
    return [
        ListEntry(p, REASONS[i % 4], f"C-{i:07d}", 1 + i % 5, 0 if i % 10 else 2_100_000_000)
        for i, p in enumerate(sorted(plates))
    ]


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = np.sort(np.asarray(samples)) * 1e6
    return round(float(np.percentile(ordered, 50)), 1), round(float(np.percentile(ordered, 99)), 1)


def _confuse(plate: str, rng: random.Random) -> str:
    swaps = {"0": "O", "1": "I", "8": "B", "5": "S", "2": "Z", "6": "G", "B": "8", "D": "0"}
    chars = list(plate)
    spots = [i for i, c in enumerate(chars) if c in swaps]
    if spots and rng.random() < 0.5:
        i = rng.choice(spots)
        chars[i] = swaps[chars[i]]
    else:  # the reader missed one character
        digits = [i for i, c in enumerate(chars) if c.isdigit()]
        del chars[rng.choice(digits)]
    return "".join(chars)


def bench_watchlist(n_entries: int = N_ENTRIES, lookups: int = 5000) -> dict[str, float]:
    """Measure the device path on a generated list; see the module docstring for the figures."""
    rng = random.Random(11)
    sim = AdminSimulator(fleet="bench")
    entries = generate_entries(n_entries)
    full = sim.full(entries, 1)
    probes = [e.plate for e in rng.sample(entries, lookups)]
    fuzzy_probes = [_confuse(p, rng) for p in probes]
    listed = {e.plate for e in entries}
    strangers = [p for p in (_plate(rng) for _ in range(lookups)) if p not in listed]
    del entries, listed
    gc.collect()
    figures: dict[str, float] = {}
    kem, hq = X25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    keys = DeviceKeys(DEVICE, kem, hq.public_key())
    key_message = make_key_message(DEVICE, kem.public_key(), bytes(32), sim.now, hq)
    full = sim.seal(full, [kem.public_key()])
    figures["sealed_bundle_bytes"] = len(full)
    options = {"keys": keys, "clock": lambda: float(sim.now)}
    with tempfile.TemporaryDirectory(prefix="raqib-wl-bench-") as tmp:
        path = Path(tmp) / "watchlist.sqlite"
        seed = WatchlistManager.open(path, sim.root, **options)
        seed.handle_key(key_message, sim.now)
        seed.handle_update(full, sim.now)
        seed.close()
        del seed, full
        gc.collect()
        release_free_memory()
        rss0 = _rss_mb()
        manager = WatchlistManager.open(path, sim.root, **options)  # locked: no key yet
        start, start_cpu = time.perf_counter(), time.process_time()
        manager.handle_key(key_message, sim.now)
        figures["load_s"] = round(time.perf_counter() - start, 3)
        figures["load_cpu_s"] = round(time.process_time() - start_cpu, 3)
        if manager.locked or len(manager.matcher) != n_entries:
            raise RuntimeError("bench list did not load")
        gc.collect()
        release_free_memory()
        figures["memory_mb"] = round(_rss_mb() - rss0, 1)
        figures.update(_lookups(manager.matcher, probes, fuzzy_probes, strangers, sim.now))
        always = Matcher.from_table(manager.matcher.table, edits="always")
        for name, value in _lookups(always, probes, fuzzy_probes, strangers, sim.now).items():
            if name.startswith("fuzzy"):
                figures[f"edits_always_{name}"] = value
        del always
        figures.update(_deltas(manager, sim, rng, kem.public_key()))
        manager.close()
    figures.update(bench_wrap(N_DEVICES))
    figures["entries"] = n_entries
    return figures


def bench_wrap(n_devices: int) -> dict[str, float]:
    """Wrap one content key for ``n_devices`` keys (HQ, one core); open one wrap (a device)."""
    device = X25519PrivateKey.generate()
    # any 32 bytes is an X25519 public key: random ones stand in for the fleet's
    others = [X25519PublicKey.from_public_bytes(random.randbytes(32)) for _ in range(n_devices)]
    fleet = [*others[:-1], device.public_key()]
    content_key = random.randbytes(32)
    start = time.perf_counter()
    table = sealed.wrap_for(content_key, fleet, "bench", 1)
    wrap_s = time.perf_counter() - start
    start = time.perf_counter()
    row = sealed.find_wrap(table, sealed.kem_keyid(device.public_key()))
    if row is None or sealed.unwrap(row, device, "bench", 1) != content_key:
        raise RuntimeError("bench wrap does not open")
    return {
        f"wrap_{n_devices}_s": round(wrap_s, 2),
        f"wrap_{n_devices}_bytes": len(table),
        "unwrap_ms": round((time.perf_counter() - start) * 1000, 2),
    }


def _deltas(
    manager: WatchlistManager,
    sim: AdminSimulator,
    rng: random.Random,
    device: X25519PublicKey,
    rounds: int = 3,
) -> dict[str, float]:
    """Median and worst of ``rounds`` deltas of 1,000 changes each."""
    times, cpu = [], []
    for version in range(2, 2 + rounds):
        table = manager.matcher.table
        rows = rng.sample(range(len(table)), 500)
        upserts = [replace(table.entry(i), reason="stolen", case_ref="C-upd") for i in rows[:250]]
        upserts += [
            ListEntry(f"{rng.randint(1, 99999)}-SH-{rng.randint(1, 89)}", "wanted")
            for _ in range(500)
        ]
        upserts = list({e.plate: e for e in upserts}.values())
        removes = [table.entry(i).plate for i in rows[250:]]
        removes = [p for p in removes if p not in {e.plate for e in upserts}]
        delta = sim.seal(sim.delta_on(table, removes, upserts, version, version - 1), [device])
        gc.collect()
        start, start_cpu = time.perf_counter(), time.process_time()
        result = manager.handle_update(delta, sim.now)
        times.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
        if not result.applied:
            raise RuntimeError(f"bench delta refused: {result.detail}")
    return {
        "delta_1000_ms": round(float(np.median(times)), 1),
        "delta_1000_ms_max": round(max(times), 1),
        "delta_1000_cpu_ms": round(float(np.median(cpu)), 1),
    }


def _lookups(
    matcher: Matcher,
    probes: list[str],
    fuzzy_probes: list[str],
    strangers: list[str],
    now: float,
) -> dict[str, float]:
    clock = time.perf_counter
    exact, fuzzy = [], []
    for plate in probes:
        t = clock()
        matcher.match(plate, 0.9, now)
        exact.append(clock() - t)
    hits = 0
    for plate in fuzzy_probes:
        t = clock()
        hits += matcher.match(plate, 0.95, now) is not None
        fuzzy.append(clock() - t)
    false = sum(matcher.match(p, 0.95, now) is not None for p in strangers)
    e50, e99 = _percentiles(exact)
    f50, f99 = _percentiles(fuzzy)
    return {
        "exact_us_p50": e50,
        "exact_us_p99": e99,
        "fuzzy_us_p50": f50,
        "fuzzy_us_p99": f99,
        "fuzzy_recall": round(hits / len(fuzzy_probes), 3),
        "fuzzy_false_rate": round(false / max(1, len(strangers)), 4),
    }


def bench_section(_config: RaqibConfig) -> dict[str, float]:
    """The ``watchlist`` section for ``agent.bench.SECTIONS`` (``raqib bench watchlist``)."""
    return bench_watchlist()
