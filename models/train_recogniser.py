"""Train the plate recogniser (small CTC CNN), quantize it to full int8 TFLite, evaluate it.

Reproducible: everything derives from ``--seed`` (synthetic data from
agent.synth.augment, real-crop augmentation, weight init, shuffling). Needs the
``train`` extra (tensorflow-cpu); the device only needs ai-edge-litert.

    python models/train_recogniser.py --out models/

Training data: synthetic field-like crops of every plate kind the reader knows
(agent.synth.augment: Moroccan one- and two-line, temporary, W18, state,
diplomatic, French, other EU) plus, when ``--datasets`` (default
``../shared/datasets``) is present, augmented copies of the *training* parts of
the real Moroccan crops (one- and two-line), re-lettered copies of them
(models/remix.py: their digits shuffled along the labelled glyph boxes) and
French plates cut from their boxes (splits by plate: models/realdata.py).
Without the real sets it trains on synthetic data only and says so.

Two-line plates are trained as the runtime shows them: the top line left of the
bottom line in one strip (agent.reader.layout.two_line_composite), labelled
"top then bottom".

Writes ``recogniser.tflite`` (uint8 image in, int8 logits out, batch 1) and
``recogniser.json`` (charset, input size, version, data, measured figures), and
prints the held-out synthetic, real Moroccan and real French accuracy and the
int8 latency that go into the model card. Working files go to ``<out>/.work/<name>/``
(git-ignored).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import parallel  # models/ is on sys.path when this script runs
import realdata
import remix
import scaffold
import teacher

from agent.reader.layout import label_tokens, logical_raw, two_line_composite
from agent.reader.pipeline import crop_box
from agent.reader.plate_text import canonicalize, is_valid, raw_tokens, two_line_parts
from agent.reads import edit_distance
from agent.synth import europe
from agent.synth.augment import (
    cast_shadow,
    clean_plate_crop,
    field_crop,
    field_degrade,
    field_plate_crop,
    plate_kind,
    random_training_plate,
    rotate_warp,
)

ROOT = Path(__file__).resolve().parent.parent

RECIPES: dict[str, dict[str, Any]] = {
    "3.1": {
        "version": "3.1.0",
        "epochs": 9,
        "finetune_epochs": 3,
        "train_size": 50000,
        "finetune_size": 20000,
        "eval_size": 2000,
        "wide_share": 0.0,
        "spread_share": 0.0,
        "pseudo": False,
        "hand": False,
        "hand_finetune": False,
        "hand_min_aspect": 0.0,
        "hand_2": False,
        "rare_letters": 0.0,
    },
    "4.0": {
        "version": "4.0.0",
        "epochs": 9,
        "finetune_epochs": 3,
        "train_size": 50000,
        "finetune_size": 20000,
        "eval_size": 2000,
        "wide_share": 0.15,
        "spread_share": 0.0,
        "pseudo": True,
        "hand": False,
        "hand_finetune": False,
        "hand_min_aspect": 0.0,
        "hand_2": False,
        "rare_letters": 0.0,
    },
    "4.1": {
        "version": "4.1.0",
        "epochs": 9,
        "finetune_epochs": 3,
        "train_size": 50000,
        "finetune_size": 20000,
        "eval_size": 2000,
        "wide_share": 0.25,
        "spread_share": 0.5,
        "pseudo": True,
        "hand": False,
        "hand_finetune": False,
        "hand_min_aspect": 0.0,
        "hand_2": False,
        "rare_letters": 0.0,
    },
}
"""What ``--recipe`` sets (each value can still be overridden by its own option). ``4.0``
builds the shipped recogniser 4.0.0 (the default): 3.1's budget and data plus the
European and FNI plates of agent.synth.europe (``wide_share`` of the synthetic strips)
and the teacher's pseudo-labelled crops (models/pseudo_labels.csv). ``4.1`` (a candidate,
same budget; measured and not shipped, models/recogniser.md) draws more of those plates
(``wide_share`` 0.25) and spreads the characters of half the square ones over the line
(``spread_share``, agent.synth.europe.SPREAD_SPACING): 4.0.0 dropped the last letter of
a square plate's line or read a spread ``K O S`` as a Moroccan letter. ``4.2`` (a
candidate) is 4.0 plus the boxes labelled by eye (models/hand_labels.csv, ``hand``),
with both stages larger (58,000 and 30,000 crops) by about what those add, so that the
model sees as many synthetic crops as 4.0. ``4.3`` (a candidate) shows those boxes in
stage 1 only (``hand_finetune`` off; stage 2 as 4.0's), since 4.2's runs read Moroccan
crops better but French whole photos worse; measured and not shipped either: the same
trade (models/recogniser.md). ``4.4`` is 4.3 without the boxes labelled by eye that are
one-line plates narrower than 2:1 (``hand_min_aspect``: mostly tilted plates, whose
upright box holds much background); it builds the ensemble's second member 4.4.0
(``--name recogniser_2 --seed 20261128 --epochs 5``, as the Makefile runs it).
``4.5`` (a candidate for the second member) is 4.4 plus the 184 boxes of
models/hand_labels_2.csv (``hand_2``), after those of models/hand_labels.csv.
``4.6`` (a candidate for the second member) is 4.4 with a fifth of the European plates'
letters swapped for ``I``, ``O``, ``Q`` or ``U`` (``rare_letters``,
agent.synth.europe.with_rare_letters), drawn from their own stream so that every other
strip is 4.4's: the shipped members drop a square plate's ``I`` and read ``U`` as ``0``.
``4.7`` (a candidate for the second member) is 4.4 with a model 1.5 times as wide and a
second, dilated convolution along the line (``body``, ``head``, ``context``: three times
the parameters). ``4.8`` (a candidate for reading video frames) is 4.0 with a model of
two fifths the parameters and a third of the multiply-adds: one 3x3 block fewer and
narrower ones, for the 1 ms per plate budget on CPUs without AVX-512. ``4.9`` (a
candidate too) is 4.8 taught by the shipped first member as well (``distil``: the file
in ``models/`` the build has just written): each step's loss adds the cross-entropy of
its per-step character distribution against the teacher's (:func:`teacher_probs`,
``distil_weight``), so the small model learns where the large one is unsure too. One
teacher: two CTC models peak at different steps, and their mean spells neither read.
``4.10`` (a candidate first member) is 4.0 taught the same way by 4.0.0 itself: a
student of the teacher's own shape, seed and data. ``4.11`` (a candidate second member)
is 4.4 taught by 4.0.0: the second member's recipe and budget, so that ``make models``
would fit its hour; measured and not shipped (models/recogniser.md, Candidate 4.11).
``4.12`` (a candidate second member) is 4.4 with the emblems that German, Austrian,
Slovak, Croatian, Slovenian and Swiss plates print in their line (``emblems`` of those
plates, agent.synth.europe.EMBLEM_COUNTRIES; drawn from a stream of their own): the
shipped members read a German plate's seals as ``8`` and a coat of arms as ``0``;
measured and not shipped (models/recogniser.md, Candidate 4.12).
``4.13`` (a candidate second member) is 4.12 with half the European plates drawn in other
faces than DejaVu (``fonts``, agent.synth.plates.LATIN_FONTS: Liberation Sans and Sans
Narrow, Noto Sans; chosen from a stream of their own): every synthetic glyph was DejaVu's,
and the members misread the national fonts' ``U``, ``I`` and ``J`` on real plates;
measured and not shipped (models/recogniser.md, Candidate 4.13).
``4.14`` (a candidate second member) is 4.4 with a cast shadow across 30 % of all the
synthetic strips (``shadows``, agent.synth.augment.cast_shadow; drawn from a stream of its
own): the held-out Moroccan crops lose digits at a shadow's sharp edge, which no
degradation drew (models/recogniser.md, Candidate 4.14).
``3.1`` rebuilds the previous recogniser 3.1.0 (models/recogniser.md)."""
RECIPES["4.2"] = {
    **RECIPES["4.0"],
    "version": "4.2.0",
    "hand": True,
    "hand_finetune": True,
    "train_size": 58000,
    "finetune_size": 30000,
}
RECIPES["4.3"] = {
    **RECIPES["4.2"],
    "version": "4.3.0",
    "hand_finetune": False,
    "finetune_size": 20000,
}
RECIPES["4.4"] = {
    **RECIPES["4.3"],
    "version": "4.4.0",
    "hand_min_aspect": 2.0,
}
RECIPES["4.5"] = {
    **RECIPES["4.4"],
    "version": "4.5.0",
    "hand_2": True,
}
RECIPES["4.6"] = {
    **RECIPES["4.4"],
    "version": "4.6.0",
    "rare_letters": 0.2,
}
RECIPES["4.7"] = {
    **RECIPES["4.4"],
    "version": "4.7.0",
    "body": ((36, True), (72, True), (96, False), (96, True), (144, True)),
    "head": 192,
    "context": 2,
}
RECIPES["4.8"] = {
    **RECIPES["4.0"],
    "version": "4.8.0",
    "body": ((16, True), (32, True), (40, True), (64, True)),
    "head": 96,
}
RECIPES["4.9"] = {
    **RECIPES["4.8"],
    "version": "4.9.0",
    "distil": "recogniser.tflite",
    "distil_weight": 1.0,
}
RECIPES["4.10"] = {
    **RECIPES["4.0"],
    "version": "4.10.0",
    "distil": "recogniser.tflite",
    "distil_weight": 1.0,
}
RECIPES["4.11"] = {
    **RECIPES["4.4"],
    "version": "4.11.0",
    "distil": "recogniser.tflite",
    "distil_weight": 1.0,
}
RECIPES["4.12"] = {
    **RECIPES["4.4"],
    "version": "4.12.0",
    "emblems": 0.8,
}
RECIPES["4.13"] = {
    **RECIPES["4.12"],
    "version": "4.13.0",
    "fonts": 0.5,
}
RECIPES["4.14"] = {
    **RECIPES["4.4"],
    "version": "4.14.0",
    "shadows": 0.3,
}
DEFAULT_RECIPE = "4.0"
RARE_LETTERS_STREAM = 7
"""Appended to a chunk's seed for the rare-letter draws (recipe 4.6)."""
EMBLEMS_STREAM = 8
"""Appended to a chunk's seed for the emblem draws (recipe 4.12)."""
FONTS_STREAM = 9
"""Appended to a chunk's seed for the font draws (recipe 4.13)."""
SHADOWS_STREAM = 10
"""Appended to a chunk's seed for the cast-shadow draws (recipe 4.14)."""
INPUT_H, INPUT_W = 32, 128
TIME_STEPS = INPUT_W // 2
"""One CTC step per 2 input columns: narrow neighbours (``1``, ``I``, ``J``) and
doubled characters need the room (at 4 columns per step, 2.0 and 3.0, they
were the commonest synthetic misses: a dropped character)."""
DIGITS = "0123456789"
LATIN = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
ARABIC = (
    "\u0623\u0628\u062f\u0647\u0648\u0637\u064a\u0634"  # alif-hamza ba dal heh waw tah yeh sheen
)
CHARSET = DIGITS + LATIN + ARABIC
"""Class i+1 is CHARSET[i]; class 0 is the CTC blank."""
MAX_LABEL = 12
INDEX = {ch: i + 1 for i, ch in enumerate(CHARSET)}

Array = np.ndarray[Any, Any]


def tokens_of(text: str, two_line: bool = False) -> str:
    """The recogniser's target tokens for a canonical text, as the strip shows them.

    One line: image order (Arabic letter for MA plates). Two lines: top line,
    then bottom line (``label_tokens``).
    """
    if two_line:
        parts = two_line_parts(text)
        if parts is None:
            raise ValueError(f"{text!r} has no two-line layout")
        return label_tokens(*parts)
    return raw_tokens(text)


def _encode(tokens: list[str]) -> tuple[Array, Array]:
    labels = np.zeros((len(tokens), MAX_LABEL), np.int32)
    lengths = np.empty(len(tokens), np.int32)
    for i, t in enumerate(tokens):
        labels[i, : len(t)] = [INDEX[ch] for ch in t]
        lengths[i] = len(t)
    return labels, lengths


EASY_KINDS = frozenset({"ma", "ww", "w18", "state", "cd"})
HARD_SHARE = 0.3
"""Share of training plates redrawn until they are of a kind the model finds harder
(French, other EU, two-line): they are rarer in the field mix, and the held-out
synthetic figures showed them lagging."""
MOPED_SHARE = 0.05
"""Share of training plates redrawn until they are motorcycle plates: with a small
region number beside a coloured sticker they lagged every other kind (92 % clean,
3.0.0), the sticker read as an Arabic letter."""


WIDE_SHARE = 0.15
"""Recipe 4.0's share of synthetic training strips drawn by agent.synth.europe: plates
of countries the grammar does not know, square / two-line European plates and French
FNI plates in their three colours (3.1.0 read real European photos at 56 %, FNI photos
at 36 %)."""


def training_plate(rng: np.random.Generator) -> tuple[str, bool]:
    """A training plate: the field mix (``random_training_plate``), harder kinds boosted."""
    text, two_line = random_training_plate(rng)
    draw = rng.random()
    if draw < MOPED_SHARE:
        while plate_kind(text, two_line=two_line) != "moped":
            text, two_line = random_training_plate(rng)
    elif draw < MOPED_SHARE + HARD_SHARE:
        while plate_kind(text, two_line=two_line) in EASY_KINDS:
            text, two_line = random_training_plate(rng)
    return text, two_line


def _synthetic_chunk(
    recipe: str,
    job: tuple[int, list[int]],
    *,
    wide_share: float,
    spread_share: float,
    rare_letters: float,
    emblems: float = 0.0,
    fonts: float = 0.0,
    shadows: float = 0.0,
) -> tuple[Array, list[str], list[str]]:
    """One seeded chunk of synthetic strips (runs on a worker): ``job`` = ``(count, seed)``.

    Recipe ``field``: every strip field-like; ``mixed`` (the fine-tune's): two thirds
    from the clean renderer, one third field-like. ``wide_share`` of the strips (none
    when 0: no draw is made) are agent.synth.europe plates, field-like, ``spread_share``
    of their square ones spread over the line, ``rare_letters`` of their letters swapped
    for rare ones (drawn from a stream of their own: the other strips stay the same),
    ``emblems`` of the plates of countries that print emblems drawn with them, ``fonts`` of
    them in other faces, ``shadows`` of all the strips with a cast shadow
    (:func:`~agent.synth.augment.cast_shadow`; each from a stream of its own too).
    """
    n, seed = job
    cv2.setNumThreads(1)
    rng = np.random.default_rng(seed)
    letters_rng = np.random.default_rng([*seed, RARE_LETTERS_STREAM])
    emblem_rng = np.random.default_rng([*seed, EMBLEMS_STREAM])
    font_rng = np.random.default_rng([*seed, FONTS_STREAM])
    shadow_rng = np.random.default_rng([*seed, SHADOWS_STREAM])
    images = np.empty((n, INPUT_H, INPUT_W), np.uint8)
    tokens: list[str] = []
    texts: list[str] = []
    for i in range(n):
        if wide_share > 0 and rng.random() < wide_share:
            text, country, two_line, groups = europe.random_wide_plate(rng)
            if rare_letters > 0 and country != "FR":
                groups = europe.with_rare_letters(groups, letters_rng, rare_letters)
                text = canonicalize(europe.training_label(groups))[0]
            images[i] = europe.wide_field_crop(
                country,
                groups,
                two_line,
                rng,
                out_height=INPUT_H,
                out_width=INPUT_W,
                spread_share=spread_share,
                emblems=emblems,
                emblem_rng=emblem_rng,
                fonts=fonts,
                font_rng=font_rng,
            )
            tokens.append(europe.training_label(groups))
        else:
            text, two_line = training_plate(rng)
            if recipe == "mixed" and i % 3:
                images[i] = _to_input(clean_plate_crop(text, rng, two_line=two_line), two_line)
            else:
                images[i] = field_crop(text, rng, INPUT_H, INPUT_W, two_line=two_line)
            tokens.append(tokens_of(text, two_line))
        texts.append(text)
        if shadows > 0 and shadow_rng.random() < shadows:
            images[i] = cast_shadow(images[i], shadow_rng)
    return images, tokens, texts


def synthetic_set(
    n: int,
    seed: int,
    workers: int,
    recipe: str = "field",
    wide_share: float = 0.0,
    *,
    spread_share: float = 0.0,
    rare_letters: float = 0.0,
    emblems: float = 0.0,
    fonts: float = 0.0,
    shadows: float = 0.0,
) -> tuple[Array, list[str], list[str]]:
    """``n`` synthetic strips (uint8, N x H x W), their tokens and canonical texts; rendered
    in seeded chunks on ``workers`` processes (same strips for any number of workers)."""
    render = functools.partial(
        _synthetic_chunk,
        recipe,
        wide_share=wide_share,
        spread_share=spread_share,
        rare_letters=rare_letters,
        emblems=emblems,
        fonts=fonts,
        shadows=shadows,
    )
    parts = list(parallel.seeded_chunks(render, n, seed, workers))
    if not parts:
        return np.empty((0, INPUT_H, INPUT_W), np.uint8), [], []
    return (
        np.concatenate([p[0] for p in parts]),
        [t for p in parts for t in p[1]],
        [t for p in parts for t in p[2]],
    )


def _load(path: Path, max_width: int = 480) -> Array | None:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        return None
    if img.shape[1] > max_width:
        f = max_width / img.shape[1]
        img = cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img)


def _to_input(bgr: Array, two_line: bool = False) -> Array:
    """The model input strip of a BGR crop (two-line plates: the runtime's composite)."""
    gray = np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    if two_line:
        return two_line_composite(gray, INPUT_H, INPUT_W)
    return np.asarray(cv2.resize(gray, (INPUT_W, INPUT_H), interpolation=cv2.INTER_AREA), np.uint8)


def augment_real_crop(crop: Array, rng: np.random.Generator, two_line: bool = False) -> Array:
    """A real plate crop, re-framed (trim or pad a little), warped and degraded."""
    h, w = crop.shape[:2]
    pad = cv2.copyMakeBorder(crop, h // 4, h // 4, w // 10, w // 10, cv2.BORDER_REPLICATE)
    x0 = w // 10 + round(w * rng.uniform(-0.06, 0.05))
    x1 = w // 10 + w - round(w * rng.uniform(-0.06, 0.05))
    y0 = h // 4 + round(h * rng.uniform(-0.15, 0.1))
    y1 = h // 4 + h - round(h * rng.uniform(-0.15, 0.1))
    out = np.ascontiguousarray(pad[y0:y1, x0:x1])
    if rng.random() < 0.7:
        out = rotate_warp(out, rng, max_deg=4.0, amount=0.03)
    if rng.random() < 0.5:  # seen at a smaller size
        f = float(rng.uniform(0.25, 0.7))
        small = cv2.resize(out, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        out = np.ascontiguousarray(small) if min(small.shape[:2]) >= 4 else out
    if rng.random() < 0.5:
        out = field_degrade(out, rng)
    return _to_input(out, two_line)


FRENCH_CROP_MARGINS = (0.05, 0.12)
"""Margins around a French plate's labelled box (shares of its width and height, before
the jitter): the training distribution, fixed here so that retuning the runtime's
margins (agent.reader.pipeline) does not change what ``make models`` builds."""


def french_crop(
    image: Array, box: tuple[float, float, float, float], rng: np.random.Generator | None
) -> Array:
    """The crop the runtime would take for ``box`` (its margins), jittered when ``rng`` is given."""
    x, y, w, h = box
    if rng is not None:
        x += w * rng.uniform(-0.05, 0.05)
        y += h * rng.uniform(-0.12, 0.12)
        w *= rng.uniform(0.95, 1.12)
        h *= rng.uniform(0.9, 1.35)
    ibox = (round(x), round(y), max(2, round(w)), max(2, round(h)))
    crop, _ = crop_box(image, ibox, FRENCH_CROP_MARGINS)
    return np.ascontiguousarray(crop)


BOX_LABEL_COPIES_SHARE = 0.5
"""Labelled boxes of the scene sets (the teacher's and those labelled by eye) get half as
many augmented copies as the labelled crops of the OCR sets: consecutive dashcam frames and
photos of one parked car repeat the same plates (and the teacher's labels are a teacher's)."""

RealCrop = tuple[Array, str, bool, int, tuple[float, float, float, float] | None]
"""(BGR image, canonical text, held out?, text lines, plate box in the image or None for a crop)"""

GLYPHS: dict[int, list[remix.Glyph]] = {}
"""Labelled glyph boxes of the real Moroccan crops, by ``id`` of the loaded image (rescaled)."""


def no_real_sets() -> dict[str, list[RealCrop]]:
    """The real sets, all empty: the kinds :func:`real_sets` fills."""
    return {"ma": [], "fr": [], "pseudo": [], "hand": [], "hand_2": []}


def real_sets(datasets: Path) -> dict[str, list[RealCrop]]:
    """Decoded real scored rows: ``{"ma": [...], "fr": [...]}`` (French: the car around the box)."""
    out = no_real_sets()
    boxes = remix.load_char_boxes(datasets)
    for row in realdata.moroccan_ocr(datasets):
        if not row.scored:
            continue
        img = _load(row.path)
        if img is None or not _trainable(row.text, row.lines):
            continue
        out["ma"].append((img, row.text, row.validation, row.lines, None))
        stored = cv2.imread(str(row.path), cv2.IMREAD_UNCHANGED)
        if row.path in boxes and stored is not None and not row.validation:
            f = img.shape[1] / stored.shape[1]  # _load may have shrunk it further
            GLYPHS[id(img)] = [
                remix.Glyph(g.char, g.line, tuple(round(v * f) for v in g.box))  # type: ignore[arg-type]
                for g in boxes[row.path]
            ]
    for row in realdata.french(datasets):
        if not row.scored or row.box is None:
            continue
        img = cv2.imread(str(row.path), cv2.IMREAD_COLOR)
        if img is None:
            continue
        x, y, w, h = row.box  # keep the car around the plate only
        x0, y0 = max(0, int(x - w)), max(0, int(y - h * 2))
        x1, y1 = min(img.shape[1], int(x + 2 * w)), min(img.shape[0], int(y + 3 * h))
        around = np.ascontiguousarray(img[y0:y1, x0:x1])
        out["fr"].append((around, row.text, row.validation, 1, (x - x0, y - y0, w, h)))
    out["pseudo"] = box_label_crops(datasets, teacher.load())
    out["hand"] = box_label_crops(datasets, teacher.load(HAND_LABELS))
    out["hand_2"] = box_label_crops(datasets, teacher.load(HAND_LABELS_2))
    return out


def _around(img: Array, box: tuple[float, float, float, float]) -> RealCrop | None:
    x, y, w, h = box
    x0, y0 = max(0, int(x - w)), max(0, int(y - h * 2))
    x1, y1 = min(img.shape[1], int(x + 2 * w)), min(img.shape[0], int(y + 3 * h))
    if x1 - x0 < 8 or y1 - y0 < 4:
        return None
    return (np.ascontiguousarray(img[y0:y1, x0:x1]), "", False, 1, (x - x0, y - y0, w, h))


HAND_LABELS = Path(__file__).resolve().parent / "hand_labels.csv"
"""Boxes labelled by eye (models/README.md): of ``moroccan-plates-detection`` (split
``train``) and of the training ride of ``romania-dashcam`` that the teacher's rules of
models/teacher.py left out. Same columns as models/pseudo_labels.csv, rule ``hand``."""
HAND_LABELS_2 = HAND_LABELS.with_name("hand_labels_2.csv")
"""The ``moroccan-plates-detection`` training boxes neither the teacher nor
:data:`HAND_LABELS` labelled, read by eye later (recipe 4.5, ``hand_2``)."""


def box_label_crops(datasets: Path, rows: list[dict[str, str]]) -> list[RealCrop]:
    """Labelled boxes (rows of models/pseudo_labels.csv or models/hand_labels.csv: training
    rides and splits only), each with the car around it, as training crops."""
    out: list[RealCrop] = []
    for row in rows:
        img = cv2.imread(str(datasets / row["dataset"] / row["image"]), cv2.IMREAD_COLOR)
        box = tuple(float(row[k]) for k in ("x", "y", "w", "h"))
        made = _around(img, box) if img is not None else None  # type: ignore[arg-type]
        lines = int(row["lines"] or 1)
        if made is None or not _trainable(row["plate_text"], lines):
            continue
        out.append((made[0], row["plate_text"], False, lines, made[4]))
    return out


def box_label_copies(
    crops: list[RealCrop], copies: int, rng: np.random.Generator, clean_share: float
) -> tuple[list[Array], list[str]]:
    """Augmented copies of labelled boxes (runtime-like crop around the box)."""
    images: list[Array] = []
    tokens: list[str] = []
    for img, text, _, lines, box in crops:
        if box is None:
            continue
        for _ in range(copies):
            crop = french_crop(img, box, rng)
            two = lines == 2
            images.append(
                augment_real_crop(crop, rng, two)
                if rng.random() > clean_share
                else _to_input(crop, two)
            )
            tokens.append(tokens_of(text, two))
    return images, tokens


def _box_label_sets(
    args: argparse.Namespace,
    real: dict[str, list[RealCrop]],
    copies: int,
    rng: np.random.Generator,
    clean_share: float,
    *,
    finetune: bool,
) -> list[tuple[list[Array], list[str]]]:
    """Copies of the teacher's boxes (``pseudo``) and of the boxes labelled by eye (``hand``;
    in stage 2, ``finetune``, only with ``hand_finetune``), each half as many as of a
    labelled crop (:data:`BOX_LABEL_COPIES_SHARE`)."""
    out = []
    share = max(1, round(copies * BOX_LABEL_COPIES_SHARE))
    if args.pseudo:
        out.append(box_label_copies(real["pseudo"], share, rng, clean_share))
        print(f"pseudo-labelled copies: {len(out[-1][0])}", flush=True)
    if args.hand and (args.hand_finetune or not finetune):
        wide = _wide_enough(_hand_crops(args, real), args.hand_min_aspect)
        out.append(box_label_copies(wide, share, rng, clean_share))
        print(f"copies of boxes labelled by eye: {len(out[-1][0])}", flush=True)
    return out


def _hand_crops(args: argparse.Namespace, real: dict[str, list[RealCrop]]) -> list[RealCrop]:
    """The crops labelled by eye a recipe trains on: those of models/hand_labels.csv, then
    with ``hand_2`` those of models/hand_labels_2.csv."""
    return real["hand"] + (real["hand_2"] if args.hand_2 else [])


def _wide_enough(crops: list[RealCrop], min_aspect: float) -> list[RealCrop]:
    """The two-line crops, and the one-line ones whose box is at least ``min_aspect`` wide."""
    return [c for c in crops if c[3] == 2 or _aspect(c) >= min_aspect]


def _aspect(crop: RealCrop) -> float:
    """Width over height of a labelled crop's box (0 without a box)."""
    box = crop[4]
    return box[2] / box[3] if box is not None and box[3] > 0 else 0.0


def _trainable(text: str, lines: int) -> bool:
    try:
        return all(ch in INDEX for ch in tokens_of(text, lines == 2))
    except ValueError:
        return False


def remixed_copy(
    img: Array, text: str, lines: int, bank: remix.GlyphBank, rng: np.random.Generator
) -> tuple[Array, str] | None:
    """A re-lettered real crop and its tokens, or None (no glyph boxes, or no valid plate)."""
    glyphs = GLYPHS.get(id(img))
    if not glyphs:
        return None
    made = remix.remix(img, glyphs, bank, rng)
    if made is None:
        return None
    image, line_texts = made
    if lines == 2 and len(line_texts) == 2:
        raw, tokens = logical_raw(*line_texts), label_tokens(*line_texts)
    elif lines == 1 and len(line_texts) == 1:
        raw = tokens = line_texts[0]
    else:
        return None
    new_text, fmt = canonicalize(raw)
    if not is_valid(new_text, fmt) or fmt != "MA" or not all(ch in INDEX for ch in tokens):
        return None
    return image, tokens


def real_ma_copies(
    real: dict[str, list[RealCrop]], copies: int, rng: np.random.Generator
) -> tuple[list[Array], list[str]]:
    """Augmented copies of the Moroccan training crops, half of them re-lettered."""
    bank = remix.GlyphBank()
    for img, _, validation, _, _ in real["ma"]:
        if not validation and id(img) in GLYPHS:
            bank.add(img, GLYPHS[id(img)])
    images: list[Array] = []
    tokens: list[str] = []
    remixed = 0
    for img, text, validation, lines, _ in real["ma"]:
        if validation:
            continue
        for _ in range(copies):
            made = remixed_copy(img, text, lines, bank, rng) if rng.random() < 0.5 else None
            source, label = made if made is not None else (img, tokens_of(text, lines == 2))
            remixed += made is not None
            images.append(augment_real_crop(source, rng, lines == 2))
            tokens.append(label)
    print(f"real Moroccan copies: {len(images)}, {remixed} re-lettered", flush=True)
    return images, tokens


def make_training_set(
    args: argparse.Namespace, real: dict[str, list[RealCrop]]
) -> tuple[Array, Array, Array]:
    """Synthetic crops plus augmented copies of the real training crops; images, labels, lengths."""
    rng = np.random.default_rng(args.seed + 2)
    images, tokens = real_ma_copies(real, args.real_copies, rng)
    for img, text, validation, _, box in real["fr"]:
        if validation or box is None:
            continue
        for _ in range(args.real_copies):
            crop = french_crop(img, box, rng)
            images.append(augment_real_crop(crop, rng) if rng.random() < 0.7 else _to_input(crop))
            tokens.append(tokens_of(text))
    for more, more_tokens in _box_label_sets(
        args, real, args.real_copies, rng, 0.3, finetune=False
    ):
        images += more
        tokens += more_tokens
    n_real = len(images)
    n_synth = max(args.train_size - n_real, 0)
    synth, synth_tokens, _ = synthetic_set(
        n_synth,
        args.seed,
        args.workers,
        wide_share=args.wide_share,
        spread_share=args.spread_share,
        rare_letters=args.rare_letters,
        emblems=args.emblems,
        fonts=args.fonts,
        shadows=args.shadows,
    )
    print(f"training crops: {n_synth} synthetic, {n_real} from real photographs", flush=True)
    x = np.concatenate([synth, np.stack(images)]) if images else synth
    y, ylen = _encode(synth_tokens + tokens)
    return x, y, ylen


def make_finetune_set(
    args: argparse.Namespace, real: dict[str, list[RealCrop]]
) -> tuple[Array, Array, Array]:
    """Stage 2: real-heavy mix (fresh augmented copies of the real training crops, and
    synthetic crops two thirds from the clean renderer, one third field-like); images,
    labels, lengths."""
    rng = np.random.default_rng(args.seed + 5)
    images, tokens = real_ma_copies(real, args.finetune_copies, rng)
    for img, text, validation, _, box in real["fr"]:
        if not validation and box is not None:
            for _ in range(args.finetune_copies):
                crop = french_crop(img, box, rng)
                images.append(
                    augment_real_crop(crop, rng) if rng.random() < 0.6 else _to_input(crop)
                )
                tokens.append(tokens_of(text))
    for more, more_tokens in _box_label_sets(
        args, real, args.finetune_copies, rng, 0.4, finetune=True
    ):
        images += more
        tokens += more_tokens
    n_synth = max(args.finetune_size - len(images), 0)
    synth, synth_tokens, _ = synthetic_set(
        n_synth,
        args.seed + 5,
        args.workers,
        "mixed",
        args.wide_share,
        spread_share=args.spread_share,
        rare_letters=args.rare_letters,
        emblems=args.emblems,
        fonts=args.fonts,
        shadows=args.shadows,
    )
    print(f"fine-tune crops: {n_synth} synthetic, {len(images)} real", flush=True)
    y, ylen = _encode(synth_tokens + tokens)
    return np.concatenate([synth, np.stack(images)]) if images else synth, y, ylen


SHIPPED_BODY: tuple[tuple[int, bool], ...] = (
    (24, True),
    (48, True),
    (64, False),
    (64, True),
    (96, True),
)
"""The shipped members' 3x3 conv blocks: (channels, followed by a max-pool). The first pool
halves height and width (64 time steps), the others the height only."""


def build_model(
    num_classes: int,
    body: tuple[tuple[int, bool], ...] = SHIPPED_BODY,
    head: int = 128,
    context: int = 1,
) -> Any:
    """Conv-only CTC recogniser: 32x128 gray -> TIME_STEPS (64) steps x num_classes logits.

    ``body`` is the 3x3 conv blocks (:data:`SHIPPED_BODY` by default; exactly four pools);
    ``head`` the channels after the height collapse; ``context`` the number of 1x5
    convolutions along the line, each dilated twice as much as the one before (1: the
    shipped members; 2 sees about three glyphs instead of two)."""
    import keras
    from keras import layers

    if sum(pooled for _, pooled in body) != 4:
        raise ValueError(f"the body must pool exactly four times (32 -> 2 rows): {body}")
    inp = keras.Input((INPUT_H, INPUT_W, 1), name="image")  # float 0..255
    x = layers.Rescaling(1.0 / 255.0)(inp)
    pools = 0
    for filters, pooled in body:
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        if pooled:  # 16 x 64, then 8, 4, 2 rows x 64
            x = layers.MaxPooling2D((2, 2) if pools == 0 else (2, 1))(x)
            pools += 1
    x = layers.Conv2D(head, (2, 1), padding="valid", use_bias=False)(x)  # 1 x 64
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    for level in range(context):  # context along width
        x = layers.Conv2D(
            head, (1, 5), padding="same", dilation_rate=(1, 2**level), use_bias=False
        )(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    x = layers.Dropout(0.15)(x)
    x = layers.Conv2D(num_classes, 1)(x)
    out = layers.Reshape((TIME_STEPS, num_classes), name="logits")(x)
    return keras.Model(inp, out)


def teacher_probs(x: Array, teacher: Path) -> Array:
    """The per-step softmax of the int8 recogniser ``teacher`` (a shipped member) on the
    crops ``x`` (N x 32 x 128 uint8), as float16 (N x TIME_STEPS x classes): the targets
    a distilled recipe's student also learns (``distil``). One teacher: two CTC models
    peak at different steps, so the mean of two members' distributions is no target."""
    from agent.reader.backend import QuantizedModel
    from agent.reader.ctc import softmax

    model = QuantizedModel(teacher)
    out = np.empty((len(x), TIME_STEPS, len(CHARSET) + 1), np.float16)
    for i in range(len(x)):
        out[i] = softmax(model.invoke(x[i][None, :, :, None])[0])
    return out


def train(
    args: argparse.Namespace,
    work: Path,
    data: tuple[Array, Array, Array],
    *,
    model: Any = None,
    epochs: int,
    lr: float,
    stage: str,
    soft: Array | None = None,
) -> Any:
    """Train ``model`` (a new one if None) on ``data`` with a cosine-decayed Adam; saves it.
    With ``soft`` (:func:`teacher_probs` of ``data``'s crops) each crop's loss adds
    ``args.distil_weight`` times the summed per-step cross-entropy against them."""
    import keras
    import tensorflow as tf

    x, y, ylen = data
    keras.utils.set_random_seed(args.seed + (0 if model is None else 17))
    if model is None:
        model = build_model(len(CHARSET) + 1, args.body, args.head, args.context)
    print(f"{stage}: recogniser parameters {model.count_params()}, {len(x)} crops", flush=True)
    steps_per_epoch = len(x) // args.batch
    schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=steps_per_epoch * epochs)
    optimizer = keras.optimizers.Adam(schedule)
    time_steps = TIME_STEPS

    def train_step(images: Any, labels: Any, lengths: Any, targets: Any) -> Any:
        # Labels as a sparse tensor: tf.nn.ctc_loss then runs TensorFlow's CTC kernel, where
        # dense labels take a graph of TensorFlow ops (the same loss to 1e-7, and the
        # recogniser's training step 17 % faster on a 2-core CPU: models/README.md).
        present = tf.where(tf.sequence_mask(lengths, tf.shape(labels)[1]))
        sparse = tf.SparseTensor(
            present, tf.gather_nd(labels, present), tf.cast(tf.shape(labels), tf.int64)
        )
        with tf.GradientTape() as tape:
            # float32 logits for the loss whatever the layers compute in (bfloat16: fit)
            logits = tf.cast(model(images, training=True), tf.float32)
            loss = tf.nn.ctc_loss(
                labels=sparse,
                logits=logits,
                label_length=None,
                logit_length=tf.fill([tf.shape(images)[0]], time_steps),
                logits_time_major=False,
                blank_index=0,
            )
            if soft is not None:
                cross = -tf.reduce_sum(targets * tf.nn.log_softmax(logits, axis=-1), axis=[1, 2])
                loss += args.distil_weight * cross
            loss = tf.reduce_mean(loss)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    step = tf.function(train_step)
    rng = np.random.default_rng(args.seed + (1 if stage == "stage 1" else 3))
    for epoch in range(epochs):
        order = rng.permutation(len(x))
        t1, losses = time.perf_counter(), []
        for b in range(steps_per_epoch):
            idx = order[b * args.batch : (b + 1) * args.batch]
            images = tf.convert_to_tensor(x[idx, :, :, None].astype(np.float32))
            labels, lengths = tf.convert_to_tensor(y[idx]), tf.convert_to_tensor(ylen[idx])
            targets = tf.convert_to_tensor(
                soft[idx].astype(np.float32) if soft is not None else np.zeros(1, np.float32)
            )
            losses.append(float(step(images, labels, lengths, targets)))
        print(
            f"{stage} epoch {epoch + 1}/{epochs} loss {np.mean(losses):.3f} "
            f"({time.perf_counter() - t1:.0f} s)",
            flush=True,
        )
    model.save(work / f"recogniser-{stage.replace(' ', '')}.keras")
    return model


def convert(model: Any, out: Path, calib: Array, work: Path) -> None:
    """Full int8 TFLite of the logits model: batch 1, uint8 image in, int8 logits out.

    Goes through a SavedModel of a batch-1 copy (converting a concrete function of
    a Keras 3 model leaves READ_VARIABLE ops that the calibrator cannot run).
    """
    import keras
    import tensorflow as tf

    inp = keras.Input((INPUT_H, INPUT_W, 1), batch_size=1, name="image")
    fixed = keras.Model(inp, model(inp, training=False))
    saved = work / "recogniser_saved_model"
    fixed.export(str(saved), format="tf_saved_model", verbose=False)

    def representative() -> Any:
        for img in calib:
            yield [img[None, :, :, None].astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.int8
    out.write_bytes(converter.convert())


def _score(reads: list[str], truths: list[str]) -> dict[str, float]:
    """Exact-plate and character accuracy (1 - edit distance / length) of canonical texts."""
    exact = sum(r == t for r, t in zip(reads, truths, strict=True))
    chars = sum(max(0, len(t) - edit_distance(r, t)) for r, t in zip(reads, truths, strict=True))
    total = sum(len(t) for t in truths)
    return {
        "exact": exact / max(len(truths), 1),
        "chars": chars / max(total, 1),
        "n": float(len(truths)),
    }


def _held_out_chunk(recipe: str, job: tuple[int, list[int]]) -> list[tuple[str, bool, Array]]:
    """One seeded chunk of held-out crops at their natural aspect (runs on a worker):
    ``(text, two_line, BGR crop)``, field-like or clean as ``recipe`` says."""
    n, seed = job
    cv2.setNumThreads(1)
    rng = np.random.default_rng(seed)
    make = field_plate_crop if recipe == "field" else clean_plate_crop
    out = []
    for _ in range(n):
        text, two_line = random_training_plate(rng)
        out.append((text, two_line, make(text, rng, two_line=two_line)))
    return out


def _wide_chunk(job: tuple[int, list[int]]) -> list[tuple[str, bool, Array]]:
    """One seeded chunk of held-out agent.synth.europe crops: ``(label, two_line, crop)``."""
    n, seed = job
    cv2.setNumThreads(1)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        _text, country, two_line, groups = europe.random_wide_plate(rng)
        crop = europe.wide_field_plate_crop(country, groups, two_line, rng)
        out.append((europe.training_label(groups), two_line, crop))
    return out


def _wide_metrics(rec: Any, n: int, seed: int, workers: int) -> dict[str, float]:
    """Held-out field-like crops of agent.synth.europe plates (unknown layouts, square,
    FNI colours), compact text compared, one- and two-line."""
    groups: dict[str, tuple[list[str], list[str]]] = {"": ([], []), "_2line": ([], [])}
    for chunk in parallel.seeded_chunks(_wide_chunk, n, seed, workers):
        for label, two_line, crop in chunk:
            read = canonicalize(rec.read_best(crop)[0])[0].replace("-", "")
            for key in ("", "_2line") if two_line else ("",):
                groups[key][0].append(read)
                groups[key][1].append(label)
    return {f"synthetic_wide{k}_exact": _score(r, t)["exact"] for k, (r, t) in groups.items() if t}


def _synthetic_metrics(rec: Any, n_synth: int, seed: int, workers: int) -> dict[str, float]:
    """Held-out synthetic crops (other seeds, the field mix) at their natural aspect, read
    as the runtime reads them (``read_best``: one line, and two lines for square crops);
    per kind too."""
    metrics: dict[str, float] = {}
    times: list[float] = []
    for name, offset in (("field", 0), ("clean", 1)):
        render = functools.partial(_held_out_chunk, name)
        by_kind: dict[str, tuple[list[str], list[str]]] = {"": ([], [])}
        for chunk in parallel.seeded_chunks(render, n_synth, seed + offset, workers):
            for text, two_line, crop in chunk:
                t0 = time.perf_counter()
                raw, _ = rec.read_best(crop)
                times.append(time.perf_counter() - t0)
                for kind in ("", plate_kind(text, two_line=two_line)):
                    reads, texts = by_kind.setdefault(kind, ([], []))
                    reads.append(canonicalize(raw)[0])
                    texts.append(text)
        for kind, (reads, texts) in sorted(by_kind.items()):
            s = _score(reads, texts)
            key = f"synthetic_{name}" + (f"_{kind}" if kind else "")
            metrics |= {f"{key}_exact": s["exact"]}
            if not kind:
                metrics |= {f"{key}_chars": s["chars"]}
    metrics["synthetic_n"] = float(n_synth)
    metrics["ms_per_plate_median"] = float(np.median(times) * 1000)
    metrics["ms_per_plate_p99"] = float(np.percentile(times, 99) * 1000)
    return metrics


def _real_metrics(rec: Any, real: dict[str, list[RealCrop]]) -> dict[str, float]:
    """Real crops, held-out and training plates, read with ``read_best``."""
    groups: dict[str, tuple[list[str], list[str]]] = {
        "real_ma_val_1line": ([], []),
        "real_ma_val_all": ([], []),
        "real_ma_val_2line": ([], []),
        "real_ma_train_1line": ([], []),
        "real_fr_val": ([], []),
        "real_fr_train": ([], []),
    }
    for img, text, validation, lines, _ in real["ma"]:
        read = canonicalize(rec.read_best(img)[0])[0]
        keys = ["real_ma_val_all"] if validation else []
        if lines == 1:
            keys.append("real_ma_val_1line" if validation else "real_ma_train_1line")
        elif validation:
            keys.append("real_ma_val_2line")
        for k in keys:
            groups[k][0].append(read)
            groups[k][1].append(text)
    for img, text, validation, _, box in real["fr"]:
        if box is None:
            continue
        read = canonicalize(rec.read_best(french_crop(img, box, None))[0])[0]
        k = "real_fr_val" if validation else "real_fr_train"
        groups[k][0].append(read)
        groups[k][1].append(text)
    metrics: dict[str, float] = {}
    for name, (r, t) in groups.items():
        if t:
            s = _score(r, t)
            metrics |= {f"{name}_{k}": s[k] for k in ("exact", "chars", "n")}
    return metrics


def evaluate(
    tflite: Path, real: dict[str, list[RealCrop]], n_synth: int, seed: int, workers: int
) -> dict[str, float]:
    """Accuracy of the int8 model through the runtime (agent.reader.recogniser) and its latency."""
    from agent.reader.recogniser import Recogniser

    rec = Recogniser(tflite, num_threads=1)
    return (
        _synthetic_metrics(rec, n_synth, seed, workers)
        | _wide_metrics(rec, n_synth // 2, seed + 2, workers)
        | _real_metrics(rec, real)
    )


def native_bfloat16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU computes bfloat16 in hardware (x86 AVX512-BF16 or AMX-BF16 flags);
    elsewhere TensorFlow emulates it, slower than float32."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    flags = {f for line in text.splitlines() if line.startswith("flags") for f in line.split()}
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def training_precision(choice: str) -> str:
    """``float32`` or ``bfloat16``: ``auto`` is bfloat16 where the CPU has it (a training
    step 23 % shorter on an AVX512-BF16 CPU: models/README.md, "Rebuilding")."""
    if choice == "auto":
        return "bfloat16" if native_bfloat16() else "float32"
    return choice


def float32_copy(model: Any, args: argparse.Namespace) -> Any:
    """The same network with float32 layers and ``model``'s weights (its variables are
    float32 whatever it computed in): what is converted, so that the int8 graph does not
    depend on the training precision."""
    import keras

    keras.mixed_precision.set_global_policy("float32")
    copy = build_model(len(CHARSET) + 1, args.body, args.head, args.context)
    copy.set_weights(model.get_weights())
    return copy


def _precision_of(model: Any) -> str:
    """``bfloat16`` when a loaded Keras model's layers compute in it, else ``float32``."""
    computes = {getattr(layer.dtype_policy, "compute_dtype", "float32") for layer in model.layers}
    return "bfloat16" if "bfloat16" in computes else "float32"


def _trained_precision(tflite: Path) -> str:
    """The training precision recorded beside an existing model (float32 before the key)."""
    try:
        meta = json.loads(tflite.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "float32"
    return str(meta.get("training_precision", "float32"))


def fit(
    args: argparse.Namespace, work: Path, real: dict[str, list[RealCrop]], tflite: Path
) -> None:
    """Stage 1 (mostly synthetic), stage 2 (real-heavy fine-tune), int8 conversion."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    if args.precision == "bfloat16":
        # Weights and the loss stay float32; convolutions run in bfloat16.
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    t0 = time.perf_counter()
    if args.convert_only or args.resume:
        stage = "stage2" if args.convert_only else "stage1"
        model = keras.models.load_model(work / f"recogniser-{stage}.keras")
        # a saved model keeps the precision it was trained in, whatever this CPU has
        args.precision = _precision_of(model)
    else:
        data = make_training_set(args, real)
        print(f"built {len(data[0])} crops in {time.perf_counter() - t0:.0f} s", flush=True)
        model = train(
            args,
            work,
            data,
            epochs=args.epochs,
            lr=args.lr,
            stage="stage 1",
            soft=_soft_targets(args, data[0]),
        )
    fine = make_finetune_set(args, real)
    if args.finetune_epochs > 0 and not args.convert_only:
        model = train(
            args,
            work,
            fine,
            model=model,
            epochs=args.finetune_epochs,
            lr=args.finetune_lr,
            stage="stage 2",
            soft=_soft_targets(args, fine[0]),
        )
    calib = fine[0][
        np.random.default_rng(args.seed + 7).choice(
            len(fine[0]), min(400, len(fine[0])), replace=False
        )
    ]
    convert(float32_copy(model, args), tflite, calib, work)
    print(f"trained and converted in {time.perf_counter() - t0:.0f} s", flush=True)


def _soft_targets(args: argparse.Namespace, x: Array) -> Array | None:
    """:func:`teacher_probs` of ``x`` by the recipe's ``distil`` file in models/, or None."""
    if not args.distil:
        return None
    t0 = time.perf_counter()
    soft = teacher_probs(x, Path(__file__).resolve().parent / args.distil)
    print(f"teacher targets for {len(x)} crops in {time.perf_counter() - t0:.0f} s", flush=True)
    return soft


def main(argv: list[str] | None = None) -> int:
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--recipe", choices=sorted(RECIPES), default=DEFAULT_RECIPE)
    recipe = RECIPES[first.parse_known_args(argv)[0].recipe]
    defaults = scaffold.Defaults(
        "recogniser",
        20261125,
        epochs=recipe["epochs"],
        finetune_epochs=recipe["finetune_epochs"],
        batch=64,
        lr=3e-3,
    )
    parser = scaffold.training_parser(__doc__.splitlines()[0], defaults)
    parser.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        default=DEFAULT_RECIPE,
        help="data and budget of a model version (RECIPES; default: the shipped one)",
    )
    parser.add_argument("--train-size", type=int, default=recipe["train_size"])
    parser.add_argument("--real-copies", type=int, default=16)
    parser.add_argument("--finetune-size", type=int, default=recipe["finetune_size"])
    parser.add_argument("--finetune-copies", type=int, default=20)
    parser.add_argument("--eval-size", type=int, default=recipe["eval_size"])
    parser.set_defaults(
        wide_share=recipe["wide_share"],
        spread_share=recipe["spread_share"],
        pseudo=recipe["pseudo"],
        hand=recipe["hand"],
        hand_finetune=recipe["hand_finetune"],
        hand_min_aspect=recipe["hand_min_aspect"],
        hand_2=recipe["hand_2"],
        rare_letters=recipe["rare_letters"],
        emblems=recipe.get("emblems", 0.0),
        fonts=recipe.get("fonts", 0.0),
        shadows=recipe.get("shadows", 0.0),
        body=recipe.get("body", SHIPPED_BODY),
        head=recipe.get("head", 128),
        context=recipe.get("context", 1),
        distil=recipe.get("distil", ""),
        distil_weight=recipe.get("distil_weight", 0.0),
        version=recipe["version"],
    )
    parser.add_argument(
        "--convert-only",
        action="store_true",
        help="quantize the last trained Keras model in <out>/.work/<name>/ again, then evaluate",
    )
    parser.add_argument(
        "--precision",
        choices=("auto", "float32", "bfloat16"),
        default="auto",
        help="what the layers compute in while training (auto: bfloat16 where the CPU "
        "has it); the converted model is the same int8 graph either way",
    )
    args = parser.parse_args(argv)
    out = scaffold.prepare(args, "synthetic data")
    work, tflite, use_real = out.work, out.tflite, out.use_real
    # measured again, not trained: keep what it was trained in
    args.precision = (
        _trained_precision(tflite) if args.eval_only else training_precision(args.precision)
    )
    real = real_sets(args.datasets) if use_real else no_real_sets()
    if not args.eval_only:
        fit(args, work, real, tflite)
    # The metadata must exist before the runtime can load the model for evaluation.
    meta: dict[str, Any] = {
        "name": "raqib-recogniser",
        "version": args.version,
        "recipe": args.recipe,
        "input": {
            "height": INPUT_H,
            "width": INPUT_W,
            "channels": 1,
            "dtype": "uint8",
            "layout": "NHWC",
            "colour": "gray",
        },
        "output": {
            "time_steps": TIME_STEPS,
            "classes": len(CHARSET) + 1,
            "dtype": "int8",
            "kind": "logits",
        },
        "charset": CHARSET,
        "blank_index": 0,
        "seed": args.seed,
        "train_size": args.train_size,
        "epochs": args.epochs,
        "training_precision": args.precision,
        "finetune_epochs": args.finetune_epochs,
        "real_data": sorted([realdata.MA_OCR, realdata.FRENCH]) if use_real else [],
        "pseudo_labelled": (
            {
                "file": "models/pseudo_labels.csv",
                "sha256": hashlib.sha256(teacher.CSV_PATH.read_bytes()).hexdigest(),
                "rows": len(real["pseudo"]),
                "sets": sorted({teacher.ROMANIA, realdata.MA_DET}),
            }
            if use_real and args.pseudo and teacher.CSV_PATH.is_file()
            else None
        ),
        "hand_labelled": (
            {
                "file": "models/hand_labels.csv",
                "sha256": hashlib.sha256(HAND_LABELS.read_bytes()).hexdigest(),
                "rows": len(real["hand"]),
                "sets": sorted({row["dataset"] for row in teacher.load(HAND_LABELS)}),
                "stages": [1, 2] if args.hand_finetune else [1],
                "min_aspect_one_line": args.hand_min_aspect,
                "rows_trained": len(_wide_enough(_hand_crops(args, real), args.hand_min_aspect)),
                **(
                    {
                        "more": {
                            "file": "models/hand_labels_2.csv",
                            "sha256": hashlib.sha256(HAND_LABELS_2.read_bytes()).hexdigest(),
                            "rows": len(real["hand_2"]),
                        }
                    }
                    if args.hand_2
                    else {}
                ),
            }
            if use_real and args.hand and HAND_LABELS.is_file()
            else None
        ),
        **({"rare_letters": args.rare_letters} if args.rare_letters else {}),
        **({"emblems": args.emblems} if args.emblems else {}),
        **({"fonts": args.fonts} if args.fonts else {}),
        **({"shadows": args.shadows} if args.shadows else {}),
        **(
            {"body": [list(b) for b in args.body], "head": args.head, "context": args.context}
            if (args.body, args.head, args.context) != (SHIPPED_BODY, 128, 1)
            else {}
        ),
        **(
            {"distilled_from": args.distil, "distil_weight": args.distil_weight}
            if args.distil
            else {}
        ),
    }
    scaffold.write_meta(tflite, meta)
    metrics = evaluate(tflite, real, args.eval_size, args.seed + 1000, args.workers)
    meta["metrics"] = {k: round(v, 4) for k, v in metrics.items()}
    meta["size_bytes"] = tflite.stat().st_size
    scaffold.write_meta(tflite, meta)
    print(json.dumps(meta["metrics"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
