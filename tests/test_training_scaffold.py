"""The training scripts' shared scaffolding (models/scaffold.py): options, outputs, metadata."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "models"))

import scaffold  # noqa: E402  (a training script module: models/ is no package)

DEFAULTS = scaffold.Defaults("thing", 7, epochs=3, finetune_epochs=2, batch=16, lr=1e-2)


def test_each_script_keeps_its_own_defaults_for_the_shared_options() -> None:
    args = scaffold.training_parser("train a thing", DEFAULTS).parse_args([])
    assert (args.name, args.seed, args.epochs, args.finetune_epochs) == ("thing", 7, 3, 2)
    assert (args.batch, args.lr, args.finetune_lr) == (16, 1e-2, 1e-3)
    assert args.workers >= 1 and not args.eval_only and not args.resume


def test_prepare_makes_the_work_folder_and_says_when_the_real_sets_are_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS"):
        monkeypatch.delenv(name, raising=False)  # what prepare sets is undone after the test
    parser = scaffold.training_parser("train a thing", DEFAULTS)
    args = parser.parse_args(["--out", str(tmp_path / "out"), "--datasets", str(tmp_path / "no")])
    out = scaffold.prepare(args, "synthetic things")
    assert out.work == tmp_path / "out" / ".work" / "thing" and out.work.is_dir()
    assert out.tflite == tmp_path / "out" / "thing.tflite"
    # another output name works in its own folder: two models can train into one <out>
    other = parser.parse_args(["--out", str(tmp_path / "out"), "--name", "thing_2"])
    assert (
        scaffold.prepare(other, "synthetic things").work == tmp_path / "out" / ".work" / "thing_2"
    )
    assert not out.use_real
    assert "training on synthetic things only" in capsys.readouterr().out


def test_tensorflow_runs_its_onednn_kernels_on_every_x86_cpu_unless_told_otherwise() -> None:
    """TensorFlow left oneDNN off by itself on an AVX2-only CPU, where training was then
    1.4-1.6x slower; the scripts turn it on for x86-64, and a user's own setting stands."""
    fresh: dict[str, str] = {}
    scaffold.tensorflow_settings(fresh, "x86_64")
    assert fresh == {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "1"}
    told = {"TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "0"}
    scaffold.tensorflow_settings(told, "x86_64")
    assert told == {"TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "0"}
    arm: dict[str, str] = {}
    scaffold.tensorflow_settings(arm, "aarch64")  # TensorFlow's own choice on Arm
    assert "TF_ENABLE_ONEDNN_OPTS" not in arm


def test_metadata_is_written_beside_the_model_as_readable_utf8(tmp_path: Path) -> None:
    scaffold.write_meta(tmp_path / "m.tflite", {"charset": "09\u0628", "version": "1.0.0"})
    text = (tmp_path / "m.json").read_text(encoding="utf-8")
    assert "\u0628" in text  # not escaped: the charset stays readable
    assert json.loads(text) == {"charset": "09\u0628", "version": "1.0.0"}


def test_recipe_4_5_is_4_4_plus_the_second_round_of_boxes_labelled_by_eye() -> None:
    """The 4.5 candidate changes one thing from the shipped second member's recipe: it also
    trains on models/hand_labels_2.csv, after models/hand_labels.csv (as one file would)."""
    import argparse

    import train_recogniser as tr

    four_four, four_five = tr.RECIPES["4.4"], tr.RECIPES["4.5"]
    assert {k for k in four_five if four_five[k] != four_four[k]} == {"version", "hand_2"}
    assert not four_four["hand_2"] and four_five["hand_2"]
    assert tr.HAND_LABELS_2.is_file()
    real = tr.no_real_sets()
    real["hand"], real["hand_2"] = ["first"], ["second"]  # type: ignore[list-item]
    with_2, without = argparse.Namespace(hand_2=True), argparse.Namespace(hand_2=False)
    assert tr._hand_crops(with_2, real) == ["first", "second"]
    assert tr._hand_crops(without, real) == ["first"]


def test_recipe_4_6_is_4_4_with_rare_letters_on_the_european_plates_only() -> None:
    """The 4.6 candidate changes one thing from the shipped second member's recipe, and its
    draws come from their own stream: every strip but the European plates' is 4.4's."""
    import numpy as np
    import train_recogniser as tr

    four_four, four_six = tr.RECIPES["4.4"], tr.RECIPES["4.6"]
    assert {k for k in four_six if four_six[k] != four_four[k]} == {"version", "rare_letters"}
    assert four_four["rare_letters"] == 0.0 < four_six["rare_letters"]
    job = (120, [20261128, 4])
    before = tr._synthetic_chunk("field", job, wide_share=0.15, spread_share=0.0, rare_letters=0.0)
    after = tr._synthetic_chunk("field", job, wide_share=0.15, spread_share=0.0, rare_letters=0.2)
    changed = [i for i in range(120) if before[1][i] != after[1][i]]
    assert changed  # some European plates got rare letters
    assert any(ch in "IOQU" for i in changed for ch in after[1][i])
    for i in range(120):
        if i not in changed:
            assert np.array_equal(before[0][i], after[0][i])
        else:  # same plate shape: only letters differ
            assert len(before[1][i]) == len(after[1][i])
            pairs = zip(before[1][i], after[1][i], strict=True)
            assert all(a == b or b in "IOQU" for a, b in pairs)


def _changes_one_key(name: str, base: str, key: str) -> None:
    """Recipe ``name`` is recipe ``base`` with ``key`` (and its version) changed."""
    import train_recogniser as tr

    recipe, earlier = tr.RECIPES[name], tr.RECIPES[base]
    assert {k for k in recipe if recipe.get(k) != earlier.get(k)} == {"version", key}


def _strips_before_and_after(
    n: int, shares: dict[str, float], **extra: float
) -> tuple[Any, Any, list[int]]:
    """One seeded chunk of ``n`` synthetic strips without and with ``extra``, and the
    indices of the strips whose pixels differ."""
    import numpy as np
    import train_recogniser as tr

    job = (n, [20261128, 4])
    before = tr._synthetic_chunk("field", job, **shares)
    after = tr._synthetic_chunk("field", job, **shares, **extra)
    changed = [i for i in range(n) if not np.array_equal(before[0][i], after[0][i])]
    return before, after, changed


def test_recipe_4_12_is_4_4_with_emblems_on_the_european_plates_only() -> None:
    """The 4.12 candidate changes one thing from the shipped second member's recipe, and its
    draws come from their own stream: every strip but the plates of countries that print
    emblems is 4.4's."""
    _changes_one_key("4.12", "4.4", "emblems")
    shares = {"wide_share": 0.15, "spread_share": 0.0, "rare_letters": 0.0}
    before, after, changed = _strips_before_and_after(160, shares, emblems=1.0)
    assert before[1] == after[1]  # same plates, same labels
    assert changed
    assert len(changed) < 160 * 0.15


def test_recipe_4_13_is_4_12_with_other_faces_on_the_european_plates_only() -> None:
    """The 4.13 candidate changes one thing from the 4.12 candidate's recipe, and its draws
    come from their own stream: the same plates and labels as 4.12, only some of the
    European strips drawn in other faces."""
    _changes_one_key("4.13", "4.12", "fonts")
    shares = {"wide_share": 0.15, "spread_share": 0.0, "rare_letters": 0.0, "emblems": 0.8}
    before, after, changed = _strips_before_and_after(160, shares, fonts=1.0)
    assert before[1] == after[1]  # same plates, same labels
    assert changed
    assert len(changed) < 160 * 0.15 * 2  # the European strips only (15 % drawn, give or take)


def test_recipe_4_14_is_4_4_with_cast_shadows_from_their_own_stream() -> None:
    """The 4.14 candidate changes one thing from the shipped second member's recipe: a share
    of all the synthetic strips gets a cast shadow, drawn from a stream of its own, so the
    plates, labels and every unshadowed strip are 4.4's, and a shadowed strip only darker."""
    _changes_one_key("4.14", "4.4", "shadows")
    shares = {"wide_share": 0.15, "spread_share": 0.0, "rare_letters": 0.0}
    before, after, changed = _strips_before_and_after(200, shares, shadows=0.3)
    assert before[1] == after[1] and before[2] == after[2]  # same plates, same labels
    assert 200 * 0.15 < len(changed) < 200 * 0.45  # about 30 %
    for i in changed:
        assert (after[0][i] <= before[0][i]).all()  # a shadow only takes light away


def test_recipes_4_7_and_4_8_change_only_the_model_shape() -> None:
    """The 4.7 and 4.8 candidates keep their base recipes' data and budget; only the
    model's blocks, head and context differ, and every other recipe keeps the shipped
    shape (so ``make models`` rebuilds the shipped files)."""
    import train_recogniser as tr

    shape = {"body", "head", "context"}
    for name, base in (("4.7", "4.4"), ("4.8", "4.0")):
        changed = {
            k for k in tr.RECIPES[name] if tr.RECIPES[name].get(k) != tr.RECIPES[base].get(k)
        }
        assert changed - {"version"} <= shape and changed & shape
        assert sum(pooled for _, pooled in tr.RECIPES[name]["body"]) == 4
    for name in ("3.1", "4.0", "4.4"):
        assert not shape & set(tr.RECIPES[name])
    assert sum(pooled for _, pooled in tr.SHIPPED_BODY) == 4


def test_distilled_recipes_4_9_and_4_10_add_only_the_teacher() -> None:
    """4.9 is 4.8 and 4.10 is 4.0 plus the distillation keys, naming the shipped first
    member; no other recipe distils (so ``make models`` builds its members from labels alone)."""
    import train_recogniser as tr

    for name, base in (("4.9", "4.8"), ("4.10", "4.0")):
        recipe = tr.RECIPES[name]
        changed = {k for k in recipe if recipe.get(k) != tr.RECIPES[base].get(k)}
        assert changed == {"version", "distil", "distil_weight"}, name
    assert tr.RECIPES["4.9"]["distil"] == tr.RECIPES["4.10"]["distil"] == "recogniser.tflite"
    assert not any("distil" in tr.RECIPES[name] for name in ("3.1", "4.0", "4.4", "4.8"))


def test_teacher_targets_spell_the_plate_the_shipped_members_read() -> None:
    """The distillation targets are per-step distributions of a shipped member on the
    training input, so their greedy decode is the plate on a clean crop (of each member:
    their mean is no target, as two CTC models peak at different steps)."""
    import numpy as np
    import train_recogniser as tr

    from agent.reader.ctc import greedy_decode
    from agent.reader.plate_text import canonicalize
    from agent.synth.augment import clean_plate_crop

    models = Path(tr.__file__).resolve().parent
    rng = np.random.default_rng(5)
    texts = ["12345-A-6", "AB-123-CD"]
    x = np.stack([tr._to_input(clean_plate_crop(t, rng)) for t in texts])
    for member in ("recogniser.tflite", "recogniser_2.tflite"):
        soft = tr.teacher_probs(x, models / member)
        assert soft.shape == (2, tr.TIME_STEPS, len(tr.CHARSET) + 1)
        np.testing.assert_allclose(soft.astype(np.float32).sum(axis=2), 1.0, atol=5e-3)
        reads = [
            canonicalize(greedy_decode(p.astype(np.float32), tr.CHARSET, probabilities=True)[0])[0]
            for p in soft
        ]
        assert reads == texts, member


def _threads(command: str) -> int:
    return int(command.split("--threads ")[1].split(maxsplit=1)[0].rstrip(";"))


@pytest.mark.parametrize(
    ("cores", "each_recogniser", "detector"), [(1, 1, 1), (2, 1, 2), (8, 4, 8)]
)
def test_make_models_gives_each_recogniser_half_the_cores_and_the_detector_all(
    cores: int, each_recogniser: int, detector: int
) -> None:
    if shutil.which("make") is None:
        pytest.fail("make is not installed (the README's commands need it)")
    # -n prints the recipe without running it; -o keeps setup-train from being printed as
    # something to do.
    printed = subprocess.run(
        ["make", "-n", "-o", "setup-train", "models", f"TRAIN_THREADS={cores}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    recipe = " ".join(printed.replace("\\\n", " ").split())
    runs = recipe.split("nice -n 5 ")[1:]
    assert [run.split()[1] for run in runs] == [
        "models/train_recogniser.py",
        "models/train_recogniser.py",
        "models/train_detector.py",
    ]
    first, second, last = runs
    assert (_threads(first), _threads(second), _threads(last)) == (
        each_recogniser,
        each_recogniser,
        detector,
    )
    assert "--recipe 4.4" in second and "--recipe" not in first
    # the detector starts only once the second member has trained, beside the first
    assert "& first=$!;" in first and second.rstrip().endswith("&&")


@pytest.mark.parametrize(
    ("flags", "native"),
    [
        ("fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni", True),  # AMD Zen 4
        ("fpu avx2 avx512f amx_bf16 amx_tile", True),  # Intel with AMX
        ("fpu sse2 avx2 fma", False),  # no bfloat16 unit: emulated, slower than float32
    ],
)
def test_recogniser_trains_in_bfloat16_only_where_the_cpu_computes_it(
    tmp_path: Path, flags: str, native: bool
) -> None:
    """``--precision auto`` (what ``make models`` runs) picks bfloat16 by the CPU's flags;
    an explicit choice is kept as given."""
    import train_recogniser as tr

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\n", "utf-8")
    assert tr.native_bfloat16(cpuinfo) is native
    assert tr.native_bfloat16(tmp_path / "absent") is False
    assert tr.training_precision("float32") == "float32"
    assert tr.training_precision("bfloat16") == "bfloat16"
    assert tr.training_precision("auto") == ("bfloat16" if tr.native_bfloat16() else "float32")


def test_a_measured_again_model_keeps_the_precision_it_was_trained_in(tmp_path: Path) -> None:
    """``--eval-only`` rewrites the model's JSON; its training precision comes from the JSON
    already there (float32 for models written before the key), not from this machine."""
    import train_recogniser as tr

    tflite = tmp_path / "recogniser.tflite"
    assert tr._trained_precision(tflite) == "float32"
    scaffold.write_meta(tflite, {"version": "4.0.0"})
    assert tr._trained_precision(tflite) == "float32"
    scaffold.write_meta(tflite, {"version": "4.0.0", "training_precision": "bfloat16"})
    assert tr._trained_precision(tflite) == "bfloat16"


def test_a_loaded_model_is_converted_as_trained_whatever_this_cpu_has() -> None:
    """``--convert-only`` and ``--resume`` record the precision the saved model's layers
    compute in (Keras keeps it in the saved file), not this machine's choice."""
    from types import SimpleNamespace

    import train_recogniser as tr

    def model(*computes: str) -> SimpleNamespace:
        policies = [
            SimpleNamespace(dtype_policy=SimpleNamespace(compute_dtype=c)) for c in computes
        ]
        return SimpleNamespace(layers=policies)

    assert tr._precision_of(model("float32", "float32")) == "float32"
    assert tr._precision_of(model("float32", "bfloat16", "bfloat16")) == "bfloat16"
