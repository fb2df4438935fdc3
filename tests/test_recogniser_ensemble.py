"""Several recognisers read each crop together; one read is kept (real models, no mocks
of the inference: only which read a member returns is forced where a test needs it)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from agent.errors import ModelError
from agent.reader.pipeline import MORE_RECOGNISER_FILES, ModelPlateReader, load_recognisers
from agent.reader.recogniser import (
    Recogniser,
    RecogniserEnsemble,
    pick_read,
    voted_by_position,
)
from agent.synth.plates import render_plate

MODELS = Path(__file__).resolve().parent.parent / "models"


def test_a_plate_beats_no_plate_whatever_the_confidence() -> None:
    assert pick_read([("12", 0.99), ("12345ب6", 0.4)]) == 1


def test_the_text_most_members_read_wins_then_the_surer_read() -> None:
    reads = [("12345ب6", 0.6), ("12845ب6", 0.9), ("12345ب6", 0.5)]
    assert pick_read(reads) == 0  # two of three read 12345-B-6; the surer of those two
    assert pick_read(reads[:2]) == 1  # one each: the surer read
    assert pick_read([("AB123CD", 0.7), ("AB123CD", 0.7)]) == 0  # a tie: the first member


def test_a_read_with_a_dropped_character_loses_to_the_fuller_read_however_sure() -> None:
    # FC-768-J is FC-768-JZ with its last letter dropped at the crop's edge
    assert pick_read([("FC768JZ", 0.96), ("FC768J", 0.99)]) == 0
    assert pick_read([("692أ51", 0.9), ("16912أ51", 0.5)]) == 1
    # a different character, not a dropped one: the surer read still wins
    assert pick_read([("22706ب8", 0.3), ("22706و8", 0.6)]) == 1
    # the votes of more members come first
    assert pick_read([("FC768J", 0.9), ("FC768J", 0.8), ("FC768JZ", 0.7)]) == 0


def test_an_emblem_read_as_one_more_character_is_not_the_fuller_read() -> None:
    # the Spanish band's E read as a 7, the Slovak arms as a 0: of no known layout, one
    # character more than a known plate read by another view or member
    assert pick_read([("74718LSC", 0.91), ("4718LSC", 0.96)]) == 1
    assert pick_read([("SC0949AD", 0.87), ("SC949AD", 0.9)]) == 1
    # neither is the fuller read: the surer one wins
    assert pick_read([("74718LSC", 0.97), ("4718LSC", 0.9)]) == 0
    # two characters more is a fuller plate, not an emblem; a known fuller read still wins
    assert pick_read([("GD9751J", 0.9), ("GD751", 0.95)]) == 0
    assert pick_read([("FC768JZ", 0.9), ("FC768J", 0.99)]) == 0


def test_a_read_of_no_known_layout_loses_to_a_plate_read_one_character_away() -> None:
    # the Romanian band's edge read into the B; a night plate's T read as a 1
    assert pick_read([("E52CNW", 0.97), ("B52CNW", 0.86)]) == 1
    assert pick_read([("B127G1A", 0.93), ("B127GTA", 0.09)]) == 1
    # two characters away, or both plates of a known layout: the surer read
    assert pick_read([("E52CNX", 0.97), ("B52CNW", 0.86)]) == 0
    assert pick_read([("B956SV", 0.97), ("B95GSV", 0.9)]) == 0
    # the votes of more members come first, and a fuller read still wins
    assert pick_read([("E52CNW", 0.97), ("E52CNW", 0.9), ("B52CNW", 0.86)]) == 0
    assert pick_read([("B839HAR", 0.7), ("B839AR", 0.99)]) == 0


def test_with_no_plate_among_the_reads_the_surest_read_is_kept() -> None:
    assert pick_read([("12X", 0.3), ("1", 0.8)]) == 1
    with pytest.raises(ValueError):
        pick_read([])


def test_the_character_most_reads_back_wins_its_slot_over_one_surer_read() -> None:
    # a Polish W read once as H, surely; three reads of the plate's views spell it W
    reads = [("HKZE888", 0.95), ("WKZE888", 0.94), ("WKZE888", 0.90), ("WKZE888", 0.90)]
    assert voted_by_position(("HKZE888", 0.95), reads) == ("WKZE-888", 0.94)
    # slot by slot: each read right but for one character, at different places
    reads = [("MN736", 0.97), ("MM736", 0.93), ("NM736", 0.79)]
    assert voted_by_position(("MN736", 0.97), reads) == ("MM-736", 0.93)
    # the kept read votes even where it is not among the reads (another view's read):
    # 0.99 for its 3 against 0.93 for the others' 5
    assert voted_by_position(("AH3233", 0.99), [("AH3253", 0.63), ("AH3251", 0.30)]) is None


def test_the_slot_vote_keeps_the_read_unless_a_read_spelt_the_voted_text_whole() -> None:
    # the slots vote DJ-15811, which one read spelt; the voted text keeps its own confidence
    reads = [("D15811", 1.0), ("DU15811", 0.97), ("DJ15811", 0.59), ("DJ15811", 0.77)]
    assert voted_by_position(("DU15811", 0.97), reads) == ("DJ-15811", 0.77)
    # each slot's winner comes from another read: AC-124 was never read, so nothing changes
    reads = [("AB124", 0.6), ("AC123", 0.6), ("XC124", 0.5), ("AB123", 0.9)]
    assert voted_by_position(("AB123", 0.9), reads) is None
    # reads of another shape do not vote; two reads of one shape do not either
    assert voted_by_position(("AB123", 0.9), [("AB1234", 0.9), ("AC123", 0.8)]) is None
    # a kept read that is no plate is left alone
    assert voted_by_position(("12", 0.9), [("13", 0.8), ("13", 0.8)]) is None


def _members(n: int = 2) -> list[Recogniser]:
    return [Recogniser(MODELS / "recogniser.tflite") for _ in range(n)]


def test_the_ensemble_keeps_the_member_that_read_a_plate_and_its_alternatives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = _members()
    ensemble = RecogniserEnsemble([first, second])
    crop = render_plate("12345-B-6", np.random.default_rng(5), height=40)
    truth = second.read_best(crop)
    assert truth[0] == "12345ب6"
    monkeypatch.setattr(first, "read_best", lambda _crop: ("12", 0.99))
    assert ensemble.read_best(crop) == truth
    # the alternatives are the kept member's, from its own last read
    assert ensemble.alternatives(truth[0]) == second.alternatives(truth[0])
    assert ensemble.version == f"{first.version}+{second.version}"
    assert ensemble.last_reads == (("12", 0.99), truth)  # every member's, for a vote


def test_with_a_doubt_band_the_other_members_read_only_the_first_members_doubtful_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Video frames: a sure read stands alone, a read below the band is a box with no plate;
    the other members read a crop only when the first member's confidence is in the band."""
    first, second = _members()
    ensemble = RecogniserEnsemble([first, second], doubt=(0.05, 0.95))
    crop = render_plate("12345-B-6", np.random.default_rng(5), height=40)
    second_reads: list[object] = []
    real_second = second.read_best
    monkeypatch.setattr(second, "read_best", lambda c: second_reads.append(c) or real_second(c))
    for first_read, reads_again in ((("12345ب6", 0.99), False), (("6-B-6", 0.01), False)):
        monkeypatch.setattr(first, "read_best", lambda _crop, r=first_read: r)
        assert ensemble.read_best(crop) == first_read
        assert ensemble.last_reads == (first_read,)
        assert bool(second_reads) is reads_again
    monkeypatch.setattr(first, "read_best", lambda _crop: ("12845ب6", 0.6))  # in doubt
    assert ensemble.read_best(crop) == real_second(crop)
    assert len(second_reads) == 1 and len(ensemble.last_reads) == 2
    # the band's edges count as doubt; without a band every member reads every crop
    monkeypatch.setattr(first, "read_best", lambda _crop: ("12845ب6", 0.95))
    ensemble.read_best(crop)
    assert len(ensemble.last_reads) == 2
    always = RecogniserEnsemble([first, second])
    monkeypatch.setattr(first, "read_best", lambda _crop: ("12345ب6", 1.0))
    always.read_best(crop)
    assert len(always.last_reads) == 2
    with pytest.raises(ValueError, match="doubt"):
        RecogniserEnsemble([first, second], doubt=(0.9, 0.1))


def test_a_sure_read_of_no_known_layout_is_in_doubt_and_a_plate_one_character_away_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Video frames: the first member's ``E52CNW`` at 0.98 (a Romanian plate's band read into
    the ``B``) is above the band but of no known layout, so the second member reads too, and
    its ``B-52-CNW`` one character away is kept; a sure known plate still stands alone."""
    first, second = _members()
    ensemble = RecogniserEnsemble([first, second], doubt=(0.05, 0.95))
    crop = render_plate("12345-B-6", np.random.default_rng(5), height=40)
    monkeypatch.setattr(second, "read_best", lambda _crop: ("B52CNW", 0.9))
    monkeypatch.setattr(first, "read_best", lambda _crop: ("E52CNW", 0.98))
    assert ensemble.read_best(crop) == ("B52CNW", 0.9)
    assert ensemble.last_reads == (("E52CNW", 0.98), ("B52CNW", 0.9))
    monkeypatch.setattr(first, "read_best", lambda _crop: ("B52CNW", 0.98))
    ensemble.read_best(crop)
    assert ensemble.last_reads == (("B52CNW", 0.98),)


def test_members_must_share_a_charset(tmp_path: Path) -> None:
    shutil.copy(MODELS / "recogniser.tflite", tmp_path / "other.tflite")
    meta = json.loads((MODELS / "recogniser.json").read_text(encoding="utf-8"))
    meta["charset"] = meta["charset"][::-1]
    (tmp_path / "other.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(ModelError, match="charset"):
        RecogniserEnsemble(
            [Recogniser(MODELS / "recogniser.tflite"), Recogniser(tmp_path / "other.tflite")]
        )
    with pytest.raises(ValueError):
        RecogniserEnsemble([])


def _models_dir(tmp_path: Path, *, second: bool) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    for name in ("recogniser", "detector"):
        for ext in (".tflite", ".json"):
            shutil.copy(MODELS / f"{name}{ext}", tmp_path / f"{name}{ext}")
    if second:
        shutil.copy(MODELS / "recogniser.tflite", tmp_path / MORE_RECOGNISER_FILES[0])
        shutil.copy(
            MODELS / "recogniser.json", (tmp_path / MORE_RECOGNISER_FILES[0]).with_suffix(".json")
        )
    return tmp_path


def test_the_reader_reads_with_every_recogniser_the_models_folder_ships(tmp_path: Path) -> None:
    alone = load_recognisers(_models_dir(tmp_path / "one", second=False))
    assert isinstance(alone, Recogniser)
    pair = load_recognisers(_models_dir(tmp_path / "two", second=True))
    assert isinstance(pair, RecogniserEnsemble) and len(pair.members) == 2
    reader = ModelPlateReader(tmp_path / "two")
    crop = render_plate("AB-123-CD", np.random.default_rng(2), height=40)
    assert reader.read_crop(crop)[0] == "AB-123-CD"


def test_a_corrupt_second_recogniser_is_a_model_error_naming_it(tmp_path: Path) -> None:
    folder = _models_dir(tmp_path, second=True)
    (folder / MORE_RECOGNISER_FILES[0]).write_bytes(b"not a model")
    with pytest.raises(ModelError, match=MORE_RECOGNISER_FILES[0]):
        ModelPlateReader(folder)


def test_photos_are_read_by_every_member_and_video_frames_by_the_second_in_doubt_only(
    tmp_path: Path,
) -> None:
    """A video frame has a 25 ms budget: the second member reads only the plates the
    first reads in doubt; a photo is read once, by both."""
    from agent.config import ReaderConfig

    config = ReaderConfig(models_dir=_models_dir(tmp_path, second=True))
    assert (config.recognisers, config.still_recognisers) == (2, 2)
    still = ModelPlateReader.from_config(config, stills=True).recogniser
    live = ModelPlateReader.from_config(config).recogniser
    assert isinstance(still, RecogniserEnsemble) and len(still.members) == 2
    assert still.doubt is None
    assert isinstance(live, RecogniserEnsemble) and live.doubt == config.recognisers_doubt
    one = ModelPlateReader.from_config(config.model_copy(update={"recognisers": 1}))
    assert isinstance(one.recogniser, Recogniser)
    # asking for more members than are shipped reads with those there are
    many = ReaderConfig(models_dir=tmp_path, recognisers=4)
    assert len(ModelPlateReader.from_config(many).recogniser.members) == 2  # type: ignore[attr-defined]


def test_a_crop_keeps_the_text_its_views_reads_agree_on_slot_by_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each view's pick keeps its surer read: the crop's HKZE-888 at 0.95 and the padded
    view's WKZE-888 at 0.94, and the crop's surer read wins. Three of the four member reads
    spell W: the reader reports WKZE-888 and hands HKZE-888 to the matcher as an
    alternative."""
    reader = ModelPlateReader(_models_dir(tmp_path, second=True), wide_view=True)
    ensemble = reader.recogniser
    assert isinstance(ensemble, RecogniserEnsemble)
    first, second = ensemble.members
    first_reads = iter([("HKZE888", 0.95), ("WKZE888", 0.90)])
    monkeypatch.setattr(first, "read_best", lambda _crop: next(first_reads, ("WKZE888", 0.9)))
    monkeypatch.setattr(second, "read_best", lambda _crop: ("WKZE888", 0.94))
    crop = render_plate("AB-123-CD", np.random.default_rng(2), height=40)
    text, fmt, confidence, alternatives = reader.read_crop_alternatives(crop)
    assert (text, fmt, confidence) == ("WKZE-888", "EU", 0.94)
    assert alternatives[0] == "HKZE-888"
