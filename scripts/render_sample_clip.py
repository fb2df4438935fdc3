"""Render samples/street_clip.mp4, its truth JSON and samples/watchlist.csv (deterministic)."""

from __future__ import annotations

import argparse
from pathlib import Path

from agent.synth.clip import render_clip, write_watchlist

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out-dir", type=Path, default=ROOT / "samples")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--crf", type=int, default=28)
    args = parser.parse_args(argv)
    mp4 = args.out_dir / "street_clip.mp4"
    truth = render_clip(mp4, args.out_dir / "street_clip.truth.json", seed=args.seed, crf=args.crf)
    listed = write_watchlist(args.out_dir / "watchlist.csv", truth, seed=args.seed)
    plates = ", ".join(v["plate"] for v in truth["vehicles"])
    print(f"{mp4}: {truth['frames']} frames, {mp4.stat().st_size / 1e6:.2f} MB; plates {plates}")
    print(f"watchlisted from the clip: {', '.join(listed)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
