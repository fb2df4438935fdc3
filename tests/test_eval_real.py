"""scripts/eval_real.py (every real set in one run) and scripts/bench_compare.py (ours and
PP-OCRv4 side by side), on a small datasets tree of the shared sets' layout (the shipped
models read its rendered plates)."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest
from conftest import load_script, plate_in_frame, write_manifest

from agent.config import ReaderConfig
from agent.reader.pipeline import ModelPlateReader
from agent.synth.plates import render_plate


@pytest.fixture(scope="module")
def eval_real() -> ModuleType:
    return load_script("eval_real")


@pytest.fixture
def datasets(tmp_path: Path) -> Path:
    root = tmp_path / "datasets"
    ocr = root / "moroccan-plates-ocr"
    (ocr / "images").mkdir(parents=True)
    plate = render_plate("60321-B-40", np.random.default_rng(3), height=44)
    cv2.imwrite(str(ocr / "images" / "held.png"), cv2.copyMakeBorder(plate, 6, 6, 8, 8, 0))
    cv2.imwrite(str(ocr / "images" / "trained.png"), plate)
    write_manifest(
        ocr,
        ["image", "plate_text", "label_status", "n_lines"],
        [["images/held.png", "60321ب40", "ok", 1], ["images/trained.png", "48213د27", "ok", 1]],
    )
    box = _photo(root / "french-plates" / "images" / "AE-330-NJ.jpg", "AE-330-NJ", 4)
    write_manifest(
        root / "french-plates",
        ["image", "plate_text", "x", "y", "w", "h"],
        [["images/AE-330-NJ.jpg", "AE330NJ", *box]],
    )
    box = _photo(root / "moroccan-plates-detection" / "images" / "scene.jpg", "60321-B-40", 5)
    write_manifest(
        root / "moroccan-plates-detection",
        ["image", "x", "y", "w", "h", "split"],
        [["images/scene.jpg", *box, "valid"], ["images/scene.jpg", *box, "train"]],
    )
    return root


def _photo(path: Path, text: str, seed: int) -> tuple[int, int, int, int]:
    """A photo of one rendered plate written at ``path``; its plate's box."""
    path.parent.mkdir(parents=True, exist_ok=True)
    photo, box = plate_in_frame(text, seed)
    cv2.imwrite(str(path), photo)
    return box


def test_one_run_scores_every_set_present_and_sums_the_shipping_rule(
    eval_real: ModuleType, datasets: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "run.json"
    assert eval_real.main(["--datasets", str(datasets), "--save", str(saved)]) == 0
    run = json.loads(saved.read_text(encoding="utf-8"))
    sets = run["sets"]
    # held-out rows only (the training crop is left out), the recoloured French proxies
    # beside them; the sets missing from the tree (mixed, dashcam, square crops) left out
    assert list(sets) == [
        "moroccan-ocr-val",
        "french-val",
        "moroccan-detection-valid",
        "french-val-yellow",
        "french-val-black",
    ]
    assert (sets["moroccan-ocr-val"]["plates"], sets["moroccan-ocr-val"]["boxes"]) == (1, 0)
    assert sets["moroccan-ocr-val"]["reads"][0][1] == "60321-B-40"
    assert (sets["french-val"]["plates"], sets["french-val"]["found"]) == (1, 1)
    assert sets["french-val"]["reads"][0][2] == "AE-330-NJ"  # the read, as raqib eval scores it
    # a scene of no read-by-eye text is scored for its box only
    assert (
        sets["moroccan-detection-valid"]["plates"],
        sets["moroccan-detection-valid"]["boxes"],
    ) == (0, 1)
    assert run["held_out_exact"] == sum(sets[n]["exact"] for n in eval_real.HELD_OUT)
    assert run["held_out_exact"] >= 1
    assert run["validation_only_exact"] == 0
    assert run["scenes_found"] == 1.0
    out = capsys.readouterr().out
    assert "| `french-val` | held-out | 1 / 1 | 1 / 1 |" in out
    assert "Moroccan scenes found: 100.0% (met: 97 %)" in out


def test_compare_lists_the_plates_gained_and_lost_against_an_earlier_run(
    eval_real: ModuleType,
) -> None:
    def run(reads: list[list[object]]) -> dict[str, object]:
        return {"sets": {"french-val": {"reads": reads}}}

    earlier = run(
        [
            ["a.jpg", "AE-330-NJ", "AE-330-NJ", 0.9, True],
            ["b.jpg", "BC-123-DE", "", 0.0, False],
            ["c.jpg", "CD-456-EF", "", 0.0, True],
        ]
    )
    now = run(
        [
            ["a.jpg", "AE-330-NJ", "AE-33-NJ", 0.8, True],
            ["b.jpg", "BC-123-DE", "BC-123-DE", 0.7, True],
            ["c.jpg", "CD-456-EF", "", 0.0, False],
        ]
    )
    assert eval_real.changes(earlier, now) == [
        "french-val: +2 -2",
        "  + BC-123-DE (b.jpg: - -> BC-123-DE)",
        "  + BC-123-DE (b.jpg: box found)",
        "  - AE-330-NJ (a.jpg: AE-330-NJ -> AE-33-NJ)",
        "  - CD-456-EF (c.jpg: box found)",
    ]
    assert eval_real.changes(earlier, earlier) == []


def test_sets_picks_the_sets_read_and_refuses_a_name_it_does_not_know(
    eval_real: ModuleType, datasets: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "run.json"
    args = ["--datasets", str(datasets), "--sets", "french-val", "--save", str(saved)]
    assert eval_real.main(args) == 0
    assert list(json.loads(saved.read_text(encoding="utf-8"))["sets"]) == ["french-val"]
    with pytest.raises(SystemExit) as exit_info:
        eval_real.main(["--datasets", str(datasets), "--sets", "french-val,scenes"])
    assert exit_info.value.code == 2
    assert "unknown set(s) scenes" in capsys.readouterr().err


def test_without_the_shared_datasets_it_says_where_it_looked(
    eval_real: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert eval_real.main(["--datasets", str(tmp_path / "nowhere")]) == 2
    assert f"no shared datasets under {tmp_path / 'nowhere'}" in capsys.readouterr().err


def test_raw_reads_files_every_members_read_by_image_and_finds_the_label_among_them(
    eval_real: ModuleType,
) -> None:
    from agent.config import ReaderConfig
    from agent.reader.evaluate import EvalResult, ScoredRead
    from agent.reader.pipeline import ModelPlateReader

    reader = ModelPlateReader.from_config(ReaderConfig(), stills=True)
    raw = eval_real.RawReads(reader)
    raw.start("held.png")
    plate = render_plate("60321-B-40", np.random.default_rng(3), height=44)
    text, _fmt, _conf = reader.read_crop(cv2.copyMakeBorder(plate, 6, 6, 8, 8, 0))
    made = raw.by_image["held.png"]
    assert len(made) >= 4  # two members, the crop and its wider view at least
    assert text in {t for t, _ in made}

    result = EvalResult(
        reads=[
            ScoredRead("12345-B-6", "12845-B-6", 0.9, image="a.jpg"),  # label among the raws
            ScoredRead("AB-123-CD", "AB-123-C", 0.8, image="b.jpg"),  # label in no raw read
            ScoredRead("48213-D-27", "48213-D-27", 0.99, image="c.jpg"),  # read right
        ]
    )
    run = eval_real.SetRun(
        "moroccan-ocr-val",
        "held-out",
        result,
        {
            "a.jpg": [("12845-B-6", 0.9), ("12345-B-6", 0.4), ("12345-B-6", 0.6)],
            "b.jpg": [("AB-123-C", 0.8)],
            "c.jpg": [("48213-D-27", 0.99)],
        },
    )
    assert eval_real.raw_hits(run) == [("a.jpg", "12345-B-6", "12845-B-6", 0.6)]


def test_raw_reads_are_listed_after_the_table_and_kept_in_the_saved_run(
    eval_real: ModuleType, datasets: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "run.json"
    args = ["--datasets", str(datasets), "--sets", "moroccan-ocr-val", "--raw-reads"]
    assert eval_real.main([*args, "--save", str(saved)]) == 0
    out = capsys.readouterr().out
    assert "misses whose label is among the raw reads:" in out
    crops = json.loads(saved.read_text(encoding="utf-8"))["sets"]["moroccan-ocr-val"]
    assert f"moroccan-ocr-val: {len(crops['raw_hits'])} of {crops['misses']} misses" in out


def test_the_folder_loop_names_each_image_before_it_is_read(tmp_path: Path) -> None:
    from agent.config import ReaderConfig
    from agent.reader.evaluate import evaluate_folder
    from agent.reader.pipeline import ModelPlateReader

    for i, text in enumerate(("60321-B-40", "48213-D-27")):
        plate = render_plate(text, np.random.default_rng(i), height=44)
        cv2.imwrite(str(tmp_path / f"{i}.png"), cv2.copyMakeBorder(plate, 6, 6, 8, 8, 0))
    write_manifest(
        tmp_path,
        ["image", "plate_text", "x", "y", "w", "h"],
        [["0.png", "60321-B-40", "", "", "", ""], ["1.png", "48213-D-27", "", "", "", ""]],
    )
    reader = ModelPlateReader.from_config(ReaderConfig(), stills=True)
    events: list[str] = []
    read_crop = reader.read_crop_alternatives

    def reading(image: np.ndarray) -> object:
        events.append("read")
        return read_crop(image)

    reader.read_crop_alternatives = reading  # type: ignore[method-assign]
    result = evaluate_folder(reader, tmp_path, before_image=events.append)
    assert events == ["0.png", "read", "1.png", "read"]
    assert result.exact == 2


def _dashcam_frame_read_by_eye(
    datasets: Path,
    frame: str,
    seed: int,
    labels: Path,
    realdata: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    *unlabelled: tuple[int, int, int, int],
) -> None:
    """A held-out ``romania-dashcam`` frame with one rendered plate, its box read by eye in a
    labels file under ``labels`` that ``realdata`` is pointed at; ``unlabelled`` boxes too."""
    box = _photo(datasets / "romania-dashcam" / frame, "AE-330-NJ", seed)
    write_manifest(
        datasets / "romania-dashcam",
        ["image", "plate_text", "x", "y", "w", "h", "source_split"],
        [[frame, "", *b, "train"] for b in (box, *unlabelled)],
    )
    write_manifest(
        labels,
        ["image", "x", "y", "w", "h", "plate_text", "label_status"],
        [[frame, *box, "AE330NJ", "eye"]],
    )
    monkeypatch.setattr(realdata, "DASHCAM_LABELS", labels / "manifest.csv")


def test_the_held_out_dashcam_rides_are_read_and_summed_apart(
    eval_real: ModuleType,
    datasets: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The dashcam rides' boxes read by eye are scored as plates, in a third sum beside the
    shipping rule's two; a box without a label counts for detection only."""
    frame = "images/train/nightride_type3_001_t5.jpg"
    _dashcam_frame_read_by_eye(
        datasets, frame, 6, tmp_path / "labels", eval_real.realdata, monkeypatch, (20, 20, 60, 15)
    )
    saved = tmp_path / "run.json"
    argv = ["--datasets", str(datasets), "--sets", "dashcam-heldout,dashcam-night"]
    assert eval_real.main([*argv, "--save", str(saved)]) == 0
    run = json.loads(saved.read_text(encoding="utf-8"))
    assert list(run["sets"]) == ["dashcam-heldout", "dashcam-night"]
    heldout = run["sets"]["dashcam-heldout"]
    assert (heldout["kind"], heldout["plates"], heldout["boxes"]) == ("held-out dashcam", 1, 2)
    assert run["dashcam_exact"] == heldout["exact"] == 1  # the night ride not counted twice
    assert run["held_out_exact"] == run["validation_only_exact"] == 0
    out = capsys.readouterr().out
    assert "held-out dashcam exact (Romanian plates, whole frames): 1 of 1" in out


def test_the_side_by_side_reads_every_folder_the_held_out_dashcam_rides_included(
    datasets: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``bench_compare.py --ours-only --json``: one row per folder, the held-out dashcam rides'
    plates read by eye among them, each with our exact share and ms per image."""
    bench_compare = load_script("bench_compare")
    frame = "images/train/dayride_type1_002_t61.jpg"
    _dashcam_frame_read_by_eye(
        datasets, frame, 7, tmp_path / "labels", bench_compare.realdata, monkeypatch
    )
    crop = render_plate("AB-123-CD", np.random.default_rng(8), height=40)
    for folder, image in (("eu-square-crops", "crop.png"), ("mixed-plates-roboflow", "m.png")):
        (datasets / folder / "images").mkdir(parents=True)
        cv2.imwrite(str(datasets / folder / "images" / image), crop)
        write_manifest(
            datasets / folder,
            ["image", "plate_text", "x", "y", "w", "h"],
            [[f"images/{image}", "AB123CD", "", "", "", ""]],
        )
    assert bench_compare.main(["--datasets", str(datasets), "--ours-only", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert list(rows) == [
        "eu-square-crops",
        "mixed-plates-roboflow",
        "french-val",
        "moroccan-ocr-val",
        "dashcam-heldout",
    ]
    assert rows["dashcam-heldout"]["plates"] == 1
    assert rows["dashcam-heldout"]["ours_exact"] == 1.0
    assert rows["dashcam-heldout"]["ours_ms"] > 0
    # PP-OCRv4 is given every benefit: a band code in front of its text is dropped
    assert bench_compare.teacher_right("ROB52CNW", "B-52-CNW")
    assert not bench_compare.teacher_right("E52CNW", "B-52-CNW")


def test_the_side_by_side_times_each_reader_twice_pp_ocr_ours_ours_pp_ocr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each folder is timed PP-OCRv4, ours, ours, PP-OCRv4, each reader's ms the mean of its
    two passes: a drift of a shared host's speed weighs on both alike. (PP-OCRv4 is the
    ``teacher`` extra, not installed by the test command: a stand-in engine with its
    output's shape takes its place here.)"""
    bench_compare = load_script("bench_compare")
    folder = tmp_path / "crops"
    (folder / "images").mkdir(parents=True)
    rows = []
    for i, text in enumerate(("AB-123-CD", "EF-456-GH")):
        crop = render_plate(text, np.random.default_rng(i), height=40)
        cv2.imwrite(str(folder / "images" / f"{i}.png"), crop)
        rows.append([f"images/{i}.png", text, "", "", "", ""])
    write_manifest(folder, ["image", "plate_text", "x", "y", "w", "h"], rows)
    order: list[str] = []
    reader = ModelPlateReader.from_config(ReaderConfig(), stills=True)
    ours = reader.read_crop_alternatives

    def reading(image: np.ndarray) -> tuple[str, str, float, tuple[str, ...]]:
        order.append("ours")
        return ours(image)

    monkeypatch.setattr(reader, "read_crop_alternatives", reading)

    def engine(image: np.ndarray) -> tuple[list[list[object]], None]:
        order.append("pp-ocr")
        return [[[[0, 0], [9, 0], [9, 9], [0, 9]], "AB123CD", 0.9]], None

    theirs, figures = bench_compare.side_by_side(engine, reader, folder, 10)
    assert order == ["pp-ocr"] * 2 + ["ours"] * 4 + ["pp-ocr"] * 2
    assert theirs["exact"] == 0.5  # its one text is right for the first crop only
    assert figures["exact_plate_accuracy"] == 1.0
    assert theirs["ms"] > 0 and figures["ms_per_image"] > 0
