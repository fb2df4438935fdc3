"""Capture: real video decoding with PyAV, image folders, corrupt files, the dropping queue."""

from __future__ import annotations

import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from agent.capture.queue import FrameQueue
from agent.capture.replay import ImageFolderSource, VideoFileSource
from agent.capture.worker import CaptureWorker
from agent.errors import CaptureError, FrameError
from agent.frames import Frame

N_FRAMES = 40


def write_video(path: Path, n_frames: int = N_FRAMES, fragmented: bool = False) -> Path:
    """An H.264 MP4 whose frame i is filled with grey level 5*i (so order is checkable)."""
    options = {"movflags": "frag_keyframe+empty_moov"} if fragmented else {}
    with av.open(str(path), "w", options=options) as container:
        codec_options = {"preset": "ultrafast", "g": "10"}
        stream = container.add_stream("libx264", rate=25, options=codec_options)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for i in range(n_frames):
            image = np.full((240, 320, 3), 5 * i, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4")


def test_video_file_yields_every_frame_in_order_with_media_time(video: Path) -> None:
    frames = list(VideoFileSource(video, start_time=1000.0).frames())
    assert len(frames) == N_FRAMES
    assert [f.index for f in frames] == list(range(N_FRAMES))
    assert frames[0].image.shape == (240, 320, 3)
    assert frames[0].image.dtype == np.uint8
    levels = [int(f.image.mean()) for f in frames]
    assert levels == sorted(levels)  # decoded in presentation order
    assert frames[10].pts_s == pytest.approx(10 / 25, abs=1e-3)
    assert frames[10].timestamp == pytest.approx(1000.0 + 10 / 25, abs=1e-3)


def test_realtime_replay_is_paced_at_the_recorded_rate(video: Path) -> None:
    start = time.monotonic()
    count = sum(1 for _ in VideoFileSource(video, realtime=True).frames())
    assert count == N_FRAMES
    assert time.monotonic() - start >= (N_FRAMES - 1) / 25 * 0.9


def test_missing_file_is_a_capture_error(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="does not exist"):
        list(VideoFileSource(tmp_path / "nope.mp4").frames())


def test_file_that_is_not_video_is_a_capture_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.mp4"
    path.write_bytes(b"this is not a video" * 100)
    with pytest.raises(CaptureError, match="cannot open video"):
        list(VideoFileSource(path).frames())


def test_truncated_mp4_without_index_is_refused_clearly(video: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    with pytest.raises(CaptureError, match=str(cut)):
        list(VideoFileSource(cut).frames())


def test_corrupt_middle_yields_good_frames_then_a_frame_error(video: Path, tmp_path: Path) -> None:
    data = bytearray(video.read_bytes())
    third = len(data) // 3
    data[third : third + 2000] = b"\xff" * 2000
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    good: list[Frame] = []
    with pytest.raises(FrameError, match="corrupt or truncated after"):
        good.extend(VideoFileSource(bad).frames())
    assert 0 < len(good) < N_FRAMES


def test_truncated_fragmented_mp4_keeps_the_frames_before_the_cut(tmp_path: Path) -> None:
    whole = write_video(tmp_path / "frag.mp4", fragmented=True)
    cut = tmp_path / "frag-cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    frames = list(VideoFileSource(cut).frames())
    assert 0 < len(frames) < N_FRAMES


def test_image_folder_replays_images_in_name_order_and_skips_unreadable(tmp_path: Path) -> None:
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), np.full((48, 64, 3), 80 * i, np.uint8))
    (tmp_path / "001b.jpg").write_bytes(b"not a jpeg")
    frames = list(ImageFolderSource(tmp_path, fps=10).frames())
    assert [int(f.image.mean()) for f in frames] == [0, 80, 160]
    assert frames[2].pts_s == pytest.approx(0.2)


def test_empty_image_folder_is_a_capture_error(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="holds no images"):
        list(ImageFolderSource(tmp_path, fps=10).frames())


def frame(i: int) -> Frame:
    return Frame(i, float(i), float(i), np.zeros((2, 2, 3), np.uint8))


def test_full_queue_drops_the_oldest_frame_and_counts_it() -> None:
    queue = FrameQueue(3)
    for i in range(5):
        queue.put(frame(i))
    taken = [queue.get(0.01) for _ in range(3)]
    assert [f.index for f in taken if f is not None] == [2, 3, 4]
    stats = queue.stats()
    assert (stats.put, stats.taken, stats.dropped, stats.depth) == (5, 3, 2, 0)
    assert queue.get(0.01) is None


def test_closed_queue_reports_closed_only_once_drained() -> None:
    queue = FrameQueue(2)
    queue.put(frame(0))
    queue.close()
    assert not queue.closed
    assert queue.get(0.01) is not None
    assert queue.closed


def test_worker_reports_a_corrupt_file_and_delivers_its_good_frames(
    video: Path, tmp_path: Path
) -> None:
    data = bytearray(video.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 2000] = b"\xff" * 2000
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    queue = FrameQueue(1000)
    worker = CaptureWorker(lambda: VideoFileSource(bad), queue)
    worker.start()
    assert worker.wait(timeout=20)
    assert worker.errors == 1
    assert "corrupt or truncated" in worker.last_error
    assert 0 < queue.stats().depth < N_FRAMES
    assert queue.stats().dropped == 0


def test_worker_loops_a_file_when_asked(video: Path) -> None:
    queue = FrameQueue(10_000)
    worker = CaptureWorker(lambda: VideoFileSource(video), queue, loop=True)
    worker.start()
    deadline = time.monotonic() + 20
    while queue.stats().put < 2 * N_FRAMES + 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    worker.stop()
    assert queue.stats().put > 2 * N_FRAMES


def test_absent_usb_camera_is_a_capture_error() -> None:
    from agent.capture.live import V4l2Source

    with pytest.raises(CaptureError, match="cannot open camera"):
        list(V4l2Source("/dev/video99", 640, 480, 25).frames())


def test_rtsp_source_refuses_a_non_rtsp_url_and_hides_credentials() -> None:
    from agent.capture.live import RtspSource

    with pytest.raises(CaptureError, match="not an RTSP URL"):
        RtspSource("http://camera/stream")
    assert "secret" not in RtspSource("rtsp://admin:secret@10.1.2.3/stream").name


def test_unreachable_rtsp_camera_is_a_capture_error() -> None:
    from agent.capture.live import RtspSource

    with pytest.raises(CaptureError, match="cannot open"):
        list(RtspSource("rtsp://127.0.0.1:9/none", timeout_s=1.0).frames())


def test_pi_camera_adapter_says_picamera2_is_missing_off_the_pi() -> None:
    from firmware_glue.camera import Picamera2Source, picamera2_available

    if picamera2_available():
        pytest.skip("running on a Pi with picamera2")  # the real camera is tested on the board
    with pytest.raises(CaptureError, match="picamera2 is not installed"):
        list(Picamera2Source(1280, 720, 25).frames())


def test_every_sink_gets_every_frame_and_a_slow_one_drops_only_its_own(video: Path) -> None:
    reader_queue, recorder_queue = FrameQueue(2), FrameQueue(10_000)
    worker = CaptureWorker(lambda: VideoFileSource(video), reader_queue, recorder_queue)
    worker.start()
    assert worker.wait(timeout=20)
    assert recorder_queue.stats().depth == N_FRAMES
    assert recorder_queue.stats().dropped == 0
    assert reader_queue.stats().depth == 2
    assert reader_queue.stats().dropped == N_FRAMES - 2
