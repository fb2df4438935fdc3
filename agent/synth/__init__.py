"""Synthetic licence plates and street clips for training and demos (deterministic, seeded)."""

from agent.synth.plates import (
    MA_LETTERS,
    SIV_LETTERS,
    add_noise,
    adjust_brightness,
    blur,
    jpeg_roundtrip,
    perspective_jitter,
    random_plate_text,
    render_plate,
    training_crop,
)

__all__ = [
    "MA_LETTERS",
    "SIV_LETTERS",
    "add_noise",
    "adjust_brightness",
    "blur",
    "jpeg_roundtrip",
    "perspective_jitter",
    "random_plate_text",
    "render_plate",
    "training_crop",
]
