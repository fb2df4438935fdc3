"""Builds the configured frame source."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from agent.capture.base import FrameSource
from agent.capture.live import RtspSource, V4l2Source
from agent.capture.replay import ImageFolderSource, VideoFileSource
from agent.config import CaptureConfig

if TYPE_CHECKING:
    from firmware_glue.camera import CameraHooks


def open_source(config: CaptureConfig, hooks: CameraHooks | None = None) -> FrameSource:
    """The frame source named by ``capture.source``; nothing is opened until iterated.

    ``hooks`` (the board's H.264 encoder feed) is attached to a Pi camera when it starts.
    """
    if config.source == "file":
        return VideoFileSource(Path(config.uri), realtime=config.realtime)
    if config.source == "images":
        return ImageFolderSource(Path(config.uri), fps=config.fps, realtime=config.realtime)
    if config.source == "v4l2":
        return V4l2Source(config.uri, config.width, config.height, config.fps)
    if config.source == "rtsp":
        return RtspSource(config.uri)
    from firmware_glue.camera import Picamera2Source

    return Picamera2Source(config.width, config.height, config.fps, hooks=hooks)
