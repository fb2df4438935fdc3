"""`raqib read` and `raqib eval` with the shipped models: real inference, no mocks."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from unittest.mock import ANY

import cv2
import numpy as np
import pytest
from conftest import DetectorRun, magenta_frame, plate_in_frame

from agent.cli import main
from agent.config import ReaderConfig
from agent.reader.evaluate import ManifestError, load_manifest
from agent.reader.pipeline import ModelPlateReader
from agent.reads import edit_distance
from agent.synth.plates import render_plate

PLATES = ("48213-D-27", "AB-123-CD", "7051-H-6", "FG-904-KL")


def _crop(text: str, seed: int) -> np.ndarray:
    plate = render_plate(text, np.random.default_rng(seed), height=44)
    h, w = plate.shape[:2]
    out = np.full((h + 12, w + 16, 3), 40, np.uint8)
    out[6 : 6 + h, 8 : 8 + w] = plate
    return out


@pytest.fixture
def manifest_dir(tmp_path: Path) -> Path:
    rows = []
    for i, text in enumerate(PLATES[:2]):
        frame, (x, y, w, h) = plate_in_frame(text, i)
        cv2.imwrite(str(tmp_path / f"frame{i}.png"), frame)
        rows.append([f"frame{i}.png", text, x, y, w, h])
    for i, text in enumerate(PLATES[2:]):
        cv2.imwrite(str(tmp_path / f"crop{i}.png"), _crop(text, 10 + i))
        rows.append([f"crop{i}.png", text.replace("-", " "), "", "", "", ""])
    with (tmp_path / "manifest.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "plate_text", "x", "y", "w", "h"])
        writer.writerows(rows)
    return tmp_path


def test_eval_prints_recall_accuracy_and_speed(
    manifest_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", str(manifest_dir), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["images"] == 4
    assert figures["labelled_boxes"] == 2
    assert figures["detection_recall"] == 1.0
    assert figures["plates"] == 4
    assert figures["exact_plate_accuracy"] >= 0.75
    assert figures["character_accuracy"] >= 0.9
    assert figures["ms_per_image"] > 0  # speed is a benchmark figure (raqib bench reader)


def test_eval_per_plate_lists_each_plate_with_its_read_as_the_figures_count_it(
    manifest_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the photos' floor at 1.0: the frames' plates are found but not reported, so the
    # file has to tell "found, not read" apart from a right read
    strict = tmp_path / "strict.toml"
    strict.write_text("[reader]\nstill_min_confidence = 1.0\n")
    out = tmp_path / "plates.csv"
    assert main(["--config", str(strict), "eval", str(manifest_dir), "--json"]) == 0
    expected = json.loads(capsys.readouterr().out)
    args = ["--config", str(strict), "eval", str(manifest_dir), "--json", "--per-plate", str(out)]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out) == expected | {"ms_per_image": ANY}
    with out.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    plates = {r["image"]: r for r in rows if r["plate_text"]}
    assert set(plates) == {"frame0.png", "frame1.png", "crop0.png", "crop1.png"}
    assert plates["frame0.png"]["plate_text"] == "48213-D-27"
    for frame in ("frame0.png", "frame1.png"):
        row = plates[frame]
        assert (row["read"], row["exact"], row["reported"], row["found"]) == ("", "0", "0", "1")
    for crop in ("crop0.png", "crop1.png"):
        row = plates[crop]
        assert row["found"] == ""  # a crop has no box to find
        assert row["exact"] == str(int(row["read"] == row["plate_text"]))
        # scored however unsure, and not matched under the strict floor (1.0, shown rounded)
        assert row["reported"] == "0" or float(row["confidence"]) >= 0.9995
    exact = sum(int(r["exact"]) for r in plates.values())
    assert exact == round(expected["exact_plate_accuracy"] * expected["plates"])


def test_eval_per_plate_to_a_path_it_cannot_write_fails_before_reading(
    manifest_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = manifest_dir / "no-such-folder" / "plates.csv"
    assert main(["eval", str(manifest_dir), "--per-plate", str(bad)]) == 1
    captured = capsys.readouterr()
    assert f"cannot write {bad}" in captured.err
    assert captured.out == ""  # no figures: nothing was read


def test_eval_scores_the_plates_raqib_read_reports(
    manifest_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A plate found but read under the photos' floor is not reported by ``raqib read``, so
    ``raqib eval`` counts it found and not read; the crops are read whatever their
    confidence (``--crops`` reports every crop's read)."""
    nothing_reported = tmp_path / "strict.toml"
    nothing_reported.write_text("[reader]\nstill_min_confidence = 1.0\n")
    frame = str(manifest_dir / "frame0.png")
    assert main(["--config", str(nothing_reported), "read", frame, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["plates"] == []
    assert main(["--config", str(nothing_reported), "eval", str(manifest_dir), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["detection_recall"] == 1.0
    assert figures["exact_plate_accuracy"] <= 0.5  # the two crops at most
    assert main(["eval", str(manifest_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["exact_plate_accuracy"] > 0.5


def test_photos_report_reads_from_a_lower_floor_than_video_frames() -> None:
    """A person reads a photo's plates with their confidences, no tracker votes over
    frames: photos report plates read at 0.4 or more, video frames at 0.5."""
    config = ReaderConfig()
    assert config.still_min_confidence < config.min_confidence
    assert ModelPlateReader.from_config(config, stills=True).min_confidence == 0.4
    assert ModelPlateReader.from_config(config).min_confidence == 0.5


def test_eval_text_output_names_every_figure(
    manifest_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", str(manifest_dir)]) == 0
    out = capsys.readouterr().out
    for label in ("detection recall", "exact-plate accuracy", "character accuracy", "ms per image"):
        assert label in out


def test_eval_says_whether_each_read_would_alert_on_a_large_list(
    manifest_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--watchlist N``: every labelled plate listed among N generated entries, then not
    listed, through the real matcher (agent.reader.alert_check)."""
    assert main(["eval", str(manifest_dir), "--json", "--watchlist", "2000"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["alert_plates"] == figures["plates"] == 4
    assert 1990 <= figures["watchlist_entries"] <= 2000
    assert figures["alert_listed_rate"] >= 0.75
    assert figures["alert_misdirected_rate"] == 0.0
    assert figures["alert_unlisted_rate"] <= 0.25
    assert figures["stray_reads"] >= figures["stray_alerts"] >= 0
    assert main(["eval", str(manifest_dir), "--watchlist", "2000"]) == 0
    out = capsys.readouterr().out
    assert "would alert, plate listed among" in out and "plate not listed" in out


def test_eval_as_video_reads_photos_with_the_cameras_reader(
    manifest_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--as-video``: the live pipeline's reader and its floor (``reader.min_confidence``),
    not the photos' (``reader.still_min_confidence``)."""
    video_floor_only = tmp_path / "video-floor.toml"
    video_floor_only.write_text("[reader]\nmin_confidence = 1.0\n")
    config = ["--config", str(video_floor_only)]
    assert main([*config, "eval", str(manifest_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["exact_plate_accuracy"] >= 0.75
    assert main([*config, "eval", str(manifest_dir), "--json", "--as-video"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["detection_recall"] == 1.0
    assert figures["exact_plate_accuracy"] <= 0.5  # photos read, none reported; crops scored
    assert main(["eval", str(manifest_dir), "--json", "--as-video"]) == 0
    assert json.loads(capsys.readouterr().out)["exact_plate_accuracy"] >= 0.75


def test_eval_deep_reads_scores_video_frames_with_the_photo_readers_reads(
    manifest_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--deep-reads``: photos read as video frames and, where the camera saw a plate, by
    the photo reader too, as the daemon's deep reads (its floor, its passes) decide."""
    video_floor_only = tmp_path / "video-floor.toml"
    video_floor_only.write_text("[reader]\nmin_confidence = 1.0\n")
    config = ["--config", str(video_floor_only)]
    assert main([*config, "eval", str(manifest_dir), "--json", "--as-video"]) == 0
    assert json.loads(capsys.readouterr().out)["exact_plate_accuracy"] <= 0.5
    assert main([*config, "eval", str(manifest_dir), "--json", "--deep-reads"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["exact_plate_accuracy"] >= 0.75  # the photos' plates, read deep
    assert figures["detection_recall"] == 1.0


@pytest.mark.parametrize("bad", ["many", "0", "99000000"])
def test_eval_refuses_a_watchlist_size_that_is_not_a_list_size(
    manifest_dir: Path, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["eval", str(manifest_dir), "--watchlist", bad])
    assert exit_.value.code == 2
    assert "--watchlist" in capsys.readouterr().err


def test_eval_reports_an_unreadable_image_and_fails(
    manifest_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (manifest_dir / "crop0.png").write_bytes(b"not a png at all")
    assert main(["eval", str(manifest_dir), "--json"]) == 1
    captured = capsys.readouterr()
    assert "crop0.png" in captured.err and "corrupt" in captured.err
    assert json.loads(captured.out)["images"] == 3


def test_eval_reads_small_crops_and_goes_on_past_one_the_reader_refuses(
    manifest_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    small = cv2.resize(_crop("7051-H-6", 10), None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
    assert small.shape[0] < 16  # a distant plate: smaller than a frame may be
    cv2.imwrite(str(manifest_dir / "crop0.png"), small)
    cv2.imwrite(str(manifest_dir / "crop1.png"), np.full((3, 40, 3), 200, np.uint8))
    assert main(["eval", str(manifest_dir), "--json"]) == 1  # one image could not be read
    captured = capsys.readouterr()
    figures = json.loads(captured.out)
    assert "crop1.png" in captured.err and "too small" in captured.err
    assert figures["images"] == 4 and figures["plates"] == 4  # the refused plate is a miss
    assert figures["unreadable_images"] == 1
    assert figures["exact_plate_accuracy"] <= 0.75


def test_eval_without_manifest_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", str(tmp_path)]) == 1
    assert "manifest.csv not found" in capsys.readouterr().err


def test_manifest_with_missing_columns_or_bad_box_is_refused(tmp_path: Path) -> None:
    (tmp_path / "manifest.csv").write_text("image,plate_text\na.png,1-B-2\n", encoding="utf-8")
    with pytest.raises(ManifestError, match="lacks the column"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.csv").write_text(
        "image,plate_text,x,y,w,h\na.png,1-B-2,1,2,x,4\n", encoding="utf-8"
    )
    with pytest.raises(ManifestError, match="numbers"):
        load_manifest(tmp_path)


def test_suspect_rows_are_not_scored(tmp_path: Path) -> None:
    (tmp_path / "manifest.csv").write_text(
        "image,plate_text,x,y,w,h,label_status\na.png,12-B-3,,,,,suspect\nb.png,4-A-5,,,,,ok\n",
        encoding="utf-8",
    )
    rows = load_manifest(tmp_path)
    assert not rows["a.png"][0].scored
    assert rows["b.png"][0].scored
    assert rows["b.png"][0].text == "4-A-5"


def test_edit_distance() -> None:
    assert edit_distance("12345-B-6", "12345-B-6") == 0
    assert edit_distance("1234-B-6", "12345-B-6") == 1
    assert edit_distance("", "AB") == 2


def test_read_json_lines_have_the_documented_shape(
    manifest_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(manifest_dir / "frame0.png")
    assert main(["read", path, "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert set(line) == {"image", "plates", "ms"}
    assert line["image"] == path
    assert isinstance(line["ms"], float)
    assert [p["text"] for p in line["plates"]] == ["48213-D-27"]
    plate = line["plates"][0]
    assert set(plate) == {"text", "format", "confidence", "box"}
    assert plate["format"] == "MA"
    assert 0.5 <= plate["confidence"] <= 1.0
    x, y, w, h = plate["box"]
    assert abs(x + w / 2 - 320) < 12 and abs(y + h / 2 - 250) < 10


def _with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """``jpeg`` with an EXIF segment holding only the orientation tag, as a phone writes it."""
    tiff = (
        b"MM\x00\x2a\x00\x00\x00\x08"  # big-endian TIFF header, first IFD at 8
        + b"\x00\x01"  # one entry
        + b"\x01\x12\x00\x03\x00\x00\x00\x01"  # tag 0x0112 (orientation), SHORT, count 1
        + orientation.to_bytes(2, "big")
        + b"\x00\x00"
        + b"\x00\x00\x00\x00"  # no next IFD
    )
    payload = b"Exif\x00\x00" + tiff
    segment = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    assert jpeg[:2] == b"\xff\xd8"
    return jpeg[:2] + segment + jpeg[2:]


def test_a_phone_photo_stored_sideways_is_read_upright(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Phones store a portrait photo's pixels sideways and say so in EXIF (orientation 6:
    # turn 90 degrees clockwise to show); an officer's photo must be read as it is shown.
    frame, _box = plate_in_frame("48213-D-27", 0)
    stored = cv2.rotate(frame, cv2.ROTATE_90_COUNTERCLOCKWISE)
    ok, jpeg = cv2.imencode(".jpg", stored, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    path = tmp_path / "portrait.jpg"
    path.write_bytes(_with_exif_orientation(jpeg.tobytes(), 6))
    assert main(["read", str(path), "--json"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert [p["text"] for p in line["plates"]] == ["48213-D-27"]


def test_read_crops_reads_one_plate_per_image(
    manifest_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = [str(manifest_dir / "crop0.png"), str(manifest_dir / "crop1.png")]
    assert main(["read", *paths, "--json", "--crops"]) == 0
    lines = [json.loads(s) for s in capsys.readouterr().out.splitlines()]
    assert [line["image"] for line in lines] == paths
    assert [line["plates"][0]["text"] for line in lines] == ["7051-H-6", "FG-904-KL"]
    crop = cv2.imread(paths[0])
    assert lines[0]["plates"][0]["box"] == [0, 0, crop.shape[1], crop.shape[0]]


def test_read_video_gives_one_line_per_frame_read(capsys: pytest.CaptureFixture[str]) -> None:
    clip = Path(__file__).resolve().parent.parent / "samples" / "street_clip.mp4"
    assert main(["read", str(clip), "--json", "--every", "100"]) == 0
    lines = [json.loads(s) for s in capsys.readouterr().out.splitlines()]
    assert [line["frame"] for line in lines] == list(range(0, 100 * len(lines), 100))
    assert len(lines) >= 3


def test_read_reports_a_corrupt_file_and_reads_the_others(
    manifest_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = manifest_dir / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    good = manifest_dir / "frame1.png"
    assert main(["read", str(bad), str(manifest_dir / "missing.png"), str(good), "--json"]) == 1
    captured = capsys.readouterr()
    assert "broken.jpg" in captured.err and "not an image, or corrupt" in captured.err
    assert "missing.png not found" in captured.err
    lines = [json.loads(s) for s in captured.out.splitlines()]
    assert [line["image"] for line in lines] == [str(good)]


def test_read_a_folder_reads_its_photos_in_name_order(
    manifest_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["read", str(manifest_dir), str(empty), "--json"]) == 1
    captured = capsys.readouterr()
    assert f"no photos or videos in folder {empty}" in captured.err
    lines = [json.loads(s) for s in captured.out.splitlines()]
    # manifest.csv is no photo; the four PNGs are read as if named one by one
    assert [Path(line["image"]).name for line in lines] == [
        "crop0.png",
        "crop1.png",
        "frame0.png",
        "frame1.png",
    ]
    frames = {Path(line["image"]).name: line for line in lines}
    assert [p["text"] for p in frames["frame0.png"]["plates"]] == ["48213-D-27"]


def test_read_names_a_phone_s_heif_photo_instead_of_calling_it_corrupt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the first bytes of an iPhone photo: an ISO-BMFF ftyp box of brand "heic"
    photo = tmp_path / "IMG_0001.HEIC"
    photo.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64))
    assert main(["read", str(photo), "--json"]) == 1
    err = capsys.readouterr().err
    assert "HEIF/AVIF photo (heic)" in err and "export it as JPEG" in err


def test_bench_reader_prints_the_documented_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "reader", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    keys = ("ocr_ms_p50", "ocr_ms_p99", "ocr_video_ms_p50", "ocr_video_ms_p99")
    for key in (*keys, "frame_ms_p50", "frame_ms_p99", "pipeline_fps"):
        assert figures[key] > 0, key
    assert figures["ocr_ms_p50"] <= figures["ocr_ms_p99"]
    assert figures["ocr_video_ms_p50"] <= figures["ocr_video_ms_p99"]
    assert figures["frame_ms_p99_fastest_of_3"] > 0
    assert (figures["frame_width"], figures["frame_height"]) == (1280, 720)


def test_photos_are_read_with_the_tiled_pass_and_video_frames_as_live(
    detector_runs: list[DetectorRun],
) -> None:
    from agent.config import ReaderConfig
    from agent.reader.detector import ModelDetector
    from agent.reader.pipeline import ModelPlateReader

    config = ReaderConfig()
    still = ModelPlateReader.from_config(config, stills=True).detector
    live = ModelPlateReader.from_config(config).detector
    assert isinstance(still, ModelDetector) and isinstance(live, ModelDetector)
    assert (still.tile_above, live.tile_above) == (1000, 2560)
    # the second look: four zooms on a photo's best 4 boxes, one on a video frame's best box
    assert (still.zooms, still.look_boxes) == ((3.0, 4.0, 5.0, 6.0), 4)
    assert (live.zooms, live.look_boxes) == ((5.0,), 2)
    never = ReaderConfig(still_tile_above=0, tile_above=0)
    for stills in (True, False):
        detector = ModelPlateReader.from_config(never, stills=stills).detector
        assert isinstance(detector, ModelDetector) and detector.tile_above is None
    # a 1280 x 720 photo is looked at in tiles (more model runs than a video frame)
    frame = magenta_frame(720, 1280)
    live.detect(frame)
    assert len(detector_runs) == 2  # colour and grey, whole frame
    detector_runs.clear()
    still.detect(frame)
    assert len(detector_runs) > 2 and ((720, 1280), False) in detector_runs
