"""Writes samples/street_audio.m4a: 14 s of synthetic street sound for the microphone simulator.

Traffic rumble (low-passed noise), a passing engine (a swept tone), and a
"voice" (voiced bursts at a speaking rhythm), mono 48 kHz, AAC in MP4.
Seeded, so the file is reproducible; no recording of anyone is shipped.
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

RATE = 48_000
SECONDS = 14.0


def street_sound(
    seconds: float = SECONDS, rate: int = RATE, seed: int = 7
) -> npt.NDArray[np.int16]:
    """The samples, int16 mono, shape (n, 1)."""
    rng = np.random.default_rng(seed)
    n = round(seconds * rate)
    t = np.arange(n) / rate
    noise = rng.normal(0.0, 1.0, n)
    kernel = np.ones(48) / 48  # crude low-pass: a rumble, not hiss
    rumble = np.convolve(noise, kernel, mode="same") * 0.6
    engine_f = 80 + 40 * np.sin(2 * np.pi * t / seconds)
    engine = 0.15 * np.sin(2 * np.pi * np.cumsum(engine_f) / rate)
    syllables = (np.sin(2 * np.pi * 3.5 * t) > 0.2) & (np.sin(2 * np.pi * 0.4 * t) > -0.3)
    pitch = 140 + 25 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voice = syllables * (0.25 * np.sin(phase) + 0.1 * np.sin(2 * phase) + 0.05 * np.sin(3 * phase))
    mix = np.clip(rumble + engine + voice, -1.0, 1.0)
    return (mix * 20_000).astype(np.int16).reshape(-1, 1)


def write_m4a(path: Path, samples: npt.NDArray[np.int16], rate: int = RATE) -> None:
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=rate, layout="mono")
        stream.codec_context.bit_rate = 48_000
        for start in range(0, samples.shape[0], 1024):
            block = samples[start : start + 1024].T.astype(np.float32) / 32768.0
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(block), format="fltp", layout="mono"
            )
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("samples/street_audio.m4a"))
    parser.add_argument("--seconds", type=float, default=SECONDS)
    args = parser.parse_args()
    write_m4a(args.out, street_sound(args.seconds))
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
