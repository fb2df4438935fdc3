"""The plate recogniser: a plate crop in, raw token text and a confidence out.

Model contract (``recogniser.tflite`` + ``recogniser.json`` beside it, written
by models/train_recogniser.py): input ``1 x H x W x 1`` uint8 grayscale (the
crop resized with area interpolation, no normalisation: the model rescales),
output ``1 x T x C`` int8 logits, class 0 the CTC blank, class ``i + 1`` the
``i``-th character of ``charset``.

Decoding: greedy best path; when its text is no valid plate (Moroccan, French
or European), the best path that fits a plate layout (``agent.reader.ctc.
constrained_decode``) is taken instead, with its own confidence. The
model's probabilities decide; the one exception is a bare stroke (``I``, plain
``1``) the model skipped between two characters, put back from the strip it read
(:mod:`agent.reader.strokes`, ``bare_strokes``).

Two-line plates (:mod:`agent.reader.layout`): :meth:`Recogniser.read_two_line`
shows the model the composite strip (top line left, bottom line right) and
turns the tokens back into one-line order by where they were emitted;
:meth:`Recogniser.read_best` reads a square-ish crop both ways and keeps one.

Ensembles (:class:`RecogniserEnsemble`): recognisers of one recipe trained from
different seeds each read the crop, and :func:`pick_read` keeps one of their
reads: a plate over no plate, the text most of them agree on, then the surer read.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from agent.errors import ModelError
from agent.frames import Image
from agent.reader.alternatives import alternative_tokens, doubts
from agent.reader.backend import QuantizedModel
from agent.reader.ctc import (
    PlateGrammar,
    constrained_decode,
    greedy_decode_steps,
    softmax,
)
from agent.reader.layout import logical_raw, maybe_two_line, split_by_position, two_line_composite
from agent.reader.plate_text import (
    canonicalize,
    has_arabic_letter,
    is_french_siv,
    is_known_plate,
    is_plausible_unknown,
)
from agent.reader.strokes import skipped_strokes, with_stroke
from agent.watchlist.confusion import fold


def _load_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelError(f"model metadata {path} not found") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"model metadata {path} is unreadable: {exc}") from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("charset"), str):
        raise ModelError(f"model metadata {path} has no charset")
    if meta.get("blank_index", 0) != 0:
        raise ModelError(f"model metadata {path}: only blank_index 0 is supported")
    return meta


class Recogniser:
    """Reads the characters of one plate crop with the int8 CTC model."""

    def __init__(
        self,
        model_path: Path,
        num_threads: int = 1,
        *,
        constrained: bool = True,
        bare_strokes: bool = True,
    ) -> None:
        meta = _load_meta(model_path.with_suffix(".json"))
        self.charset: str = meta["charset"]
        self.version: str = str(meta.get("version", "unknown"))
        self._model = QuantizedModel(model_path, num_threads)
        shape = self._model.input_shape
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 1:
            raise ModelError(f"recogniser {model_path} must take 1 x H x W x 1, takes {shape}")
        out = self._model.output_shape
        if len(out) != 3 or out[2] != len(self.charset) + 1:
            raise ModelError(
                f"recogniser {model_path} outputs {out}, expected 1 x T x {len(self.charset) + 1}"
            )
        self.input_size: tuple[int, int] = (shape[1], shape[2])  # height, width
        self._input = np.zeros(shape, np.uint8)
        self._resized = self._input[0, :, :, 0]  # a view: resizing writes the model input
        self._probs = np.empty(out[1:], np.float32)
        self._grammar = PlateGrammar(self.charset) if constrained else None
        self.bare_strokes = bare_strokes
        # The last greedy reads (one line, two lines) of the crop being read, with their
        # probabilities, for :meth:`alternatives`.
        self._one = _Greedy(np.empty(out[1:], np.float32))
        self._two = _Greedy(np.empty(out[1:], np.float32))

    def read(self, crop: Image) -> tuple[str, float]:
        """Raw token text (digits, Latin and Arabic letters) and confidence of a BGR crop.

        A 2-D (grayscale) crop is read as is; anything else raises ``ValueError``.
        """
        return self.read_gray(_gray(crop))

    def read_gray(self, gray: npt.NDArray[np.uint8]) -> tuple[str, float]:
        """Same as :meth:`read` for a grayscale crop."""
        raw, confidence = self._greedy_one_line(gray)
        return (raw, confidence) if is_known_plate(raw) else self._fitted(raw, confidence)

    def _greedy_one_line(self, gray: npt.NDArray[np.uint8]) -> tuple[str, float]:
        """Greedy read of the crop squeezed into the model input; probabilities kept."""
        height, width = self.input_size
        resized = cv2.resize(gray, (width, height), dst=self._resized, interpolation=cv2.INTER_AREA)
        if resized is not self._resized:  # OpenCV allocated after all: copy into the input
            np.copyto(self._resized, resized)
        self._infer()
        tokens, confidence, steps = self._greedy(two_line=False)
        self._one.keep(tokens, steps, tokens, self._probs)
        return tokens, confidence

    def _fitted(self, raw: str, confidence: float) -> tuple[str, float]:
        """The best path that fits a plate layout, from the last probabilities (usually one
        dropped or doubled character, or the thin alif read as "1"); ``raw`` if none fits.

        A read that is a French SIV plate but for one character of the same OCR confusion
        class (``D0178TV``: ``D`` read as ``0``, however sure) takes the SIV path, with
        the read's confidence: the model was sure of the glyph's shape, the layout says
        which of the look-alikes it is (:func:`_siv_but_one_confusion`). Otherwise a
        greedy read of a layout the grammar does not know (a Slovak or Swiss plate)
        is kept as read when fitting it would cost too much probability (the fitted
        path is less than :data:`UNKNOWN_KEEP_RATIO` times as likely as the read), or
        would drop characters of a read at least :data:`SURE_UNKNOWN` sure: a path
        that skips a character can be as probable as the read itself, so probability
        alone let the grammar cut a British ``BT63UYN`` (before it knew that layout) down
        to a Portuguese-shaped ``BT63YN``. Nor is a Latin read fitted by a path that skips
        a character inside it (:func:`_inner_glyph_dropped`), however unsure the read.

        An empty read (blank at every step: most boxes that hold no plate) is not fitted.
        The path the grammar forces through the blanks is no read: on every real set, as
        photos and as video frames, it was at most 0.04 sure, and once it won a crop's
        pick (``6-WW`` for the square ``SZ-44-YW``). Such reads were 39 % of the fitting a
        photo did and 23 % of a video frame's (models/recogniser.md, "No fitting of empty
        reads"). Nor is a read fitted by a path that adds more than :data:`FIT_MAX_ADDED`
        character to it: a dropped glyph or the thin alif is one character, and a path that
        adds two or more is forced through blanks too (a square German ``OHZ / B627`` whose
        one-line read ``5`` was fitted to ``3-S-52`` at 0.002, a known plate that beat the
        two-line read ``0HZB627`` at 0.63). A read shorter than the shortest layout less
        that one character is left as it is, without the grammar pass.
        """
        if self._grammar is None or len(raw) + FIT_MAX_ADDED < self._grammar.min_length:
            return raw, confidence
        fitted, fitted_conf = constrained_decode(self._probs, self.charset, self._grammar)
        if (
            not fitted
            or len(fitted) > len(raw) + FIT_MAX_ADDED
            or _inner_glyph_dropped(raw, fitted)
        ):
            return raw, confidence
        if _siv_but_one_confusion(raw, fitted):
            return fitted, confidence
        if is_plausible_unknown(raw, confidence) and (
            fitted_conf < UNKNOWN_KEEP_RATIO * confidence
            or (
                len(fitted) < len(raw)
                and confidence >= SURE_UNKNOWN
                and not _band_glyph_dropped(raw, fitted)
            )
        ):
            return raw, confidence
        return fitted, fitted_conf

    def read_two_line(self, crop: Image | npt.NDArray[np.uint8]) -> tuple[str, float]:
        """Raw text and confidence of a crop read as a two-line plate (BGR or grayscale).

        The crop is cut at the gap between its lines and shown to the model as
        :func:`~agent.reader.layout.two_line_composite` (written straight into
        the model input); the greedy tokens are split into top and bottom line
        by the time step they were emitted at and put back in one-line order
        (:func:`~agent.reader.layout.logical_raw`: ``"45498ب26"`` for a car,
        ``"8|013353"`` for a motorcycle). Greedy only: no grammar pass, since
        the two-line layouts differ from the one-line ones the grammar knows.
        """
        height, width = self.input_size
        two_line_composite(_gray(crop), height, width, out=self._resized)
        self._infer()
        tokens, confidence, steps = self._greedy(two_line=True)
        top, bottom = split_by_position(tokens, steps, self._probs.shape[0])
        raw = logical_raw(top, bottom)
        self._two.keep(tokens, steps, raw, self._probs)
        return raw, confidence

    def alternatives(self, raw: str) -> list[str]:
        """The few best other raw reads of the crop just read as ``raw`` (the result of the
        last :meth:`read_best`, :meth:`read_gray` or :meth:`read_two_line`): its doubtful
        characters swapped (:mod:`agent.reader.alternatives`), most probable first.

        Empty when ``raw`` came from the grammar-constrained pass (its path is not a
        greedy one) or from an earlier crop.
        """
        for greedy, two_line in ((self._one, False), (self._two, True)):
            if greedy.raw != raw or not raw:
                continue
            found = doubts(greedy.probs, greedy.tokens, greedy.steps, self.charset)
            alts = alternative_tokens(greedy.tokens, found)
            if not two_line:
                return alts
            half = greedy.probs.shape[0]
            return [logical_raw(*split_by_position(alt, greedy.steps, half)) for alt in alts]
        return []

    def read_best(self, crop: Image | npt.NDArray[np.uint8]) -> tuple[str, float]:
        """Raw text and confidence of a crop that may hold a one- or a two-line plate.

        The crop (BGR or grayscale; its own size decides, so pass the crop as
        read, margins included) is read as one line (:meth:`read_gray`). Only
        when it is square enough for a two-line plate
        (:func:`~agent.reader.layout.maybe_two_line`: width / height < 2.6, and
        at least 4 rows) is it also read as two lines (:meth:`read_two_line`),
        and :func:`choose_read` keeps one of the two reads. Both reads run for
        such a crop: a loose crop of a one-line plate is square too, and a
        two-line read of it can look like a valid plate (measured: taking any
        valid two-line read first cost 2.5 points on the real Moroccan crops).

        Two shortcuts, each measured to give the same reads on the real
        Moroccan and the synthetic held-out crops (131 + 1,000):

        - a crop narrower than :data:`TWO_LINE_PREFERRED_ASPECT` whose two-line
          read is a plate with confidence >= :data:`SURE_TWO_LINE` is not read
          as one line at all (one model run instead of two);
        - when the greedy one-line read is no plate (nor a sure read of a layout
          the grammar does not know) and the two-line read is one, the one-line
          read is not fitted to a layout (the costliest step).
        """
        gray = _gray(crop)
        height, width = gray.shape
        self._one.raw = self._two.raw = ""
        if height < 4 or not maybe_two_line(width, height):
            return self.read_gray(gray)
        two = self.read_two_line(gray)
        if (
            width / height < TWO_LINE_PREFERRED_ASPECT
            and two[1] >= SURE_TWO_LINE
            and is_known_plate(two[0])
        ):
            return two
        one = self._greedy_one_line(gray)
        if not is_known_plate(one[0]):
            if is_known_plate(two[0]) and not _sure_unknown(*one):
                return two
            one = self._fitted(*one)
        return choose_read(one, two, width / height)

    def _greedy(self, *, two_line: bool) -> tuple[str, float, list[int]]:
        """The greedy read of the last inference, with the bare strokes the model skipped put
        back from the strip it saw (:mod:`agent.reader.strokes`, ``bare_strokes``)."""
        tokens, confidence, steps = greedy_decode_steps(
            self._probs, self.charset, probabilities=True
        )
        if self.bare_strokes:
            for step in skipped_strokes(
                self._resized, tokens, steps, self._probs.shape[0], two_line=two_line
            ):
                tokens, steps = with_stroke(tokens, steps, step)
        return tokens, confidence, steps

    def _infer(self) -> None:
        """Run the model on the input buffer; softmax probabilities into ``self._probs``."""
        logits = self._model.invoke(self._input)
        softmax(logits[0], out=self._probs)


class PlateRecogniser(Protocol):
    """What the reader needs of a recogniser: one model (:class:`Recogniser`) or several
    (:class:`RecogniserEnsemble`)."""

    version: str

    def read(self, crop: Image) -> tuple[str, float]: ...
    def read_best(self, crop: Image | npt.NDArray[np.uint8]) -> tuple[str, float]: ...
    def alternatives(self, raw: str) -> list[str]: ...


class RecogniserEnsemble:
    """Recognisers of one architecture and charset, trained from different seeds (and
    recipes), reading every crop together.

    Why: seeds of the same recipe reach the same accuracy on the held-out real sets
    (within 2-4 points) but miss different plates, so where one is unsure the other is
    often right; a member trained on other data (recipe 4.4's real boxes labelled by
    eye) misses still others. Each member reads the crop (:meth:`Recogniser.read_best`, grammar and
    two-line logic included) and :func:`pick_read` keeps one read; its confidence and
    :meth:`alternatives` are that member's. Averaging the members' probabilities per
    time step instead does not work: independently trained CTC models emit a character
    at different time steps (measured: 10-23 % exact). Costs one model run per member and
    crop (models/recogniser.md, Ensemble).

    With ``doubt`` (``(low, high)``, video frames) the members after the first read a crop
    only when the first member's read has a confidence in ``[low, high]``: a surer read
    stands alone, and a read below ``low`` is a box that holds no plate (most of a video
    frame's boxes), so a frame pays for the second read about one box in four
    (models/recogniser.md, "Second reads for video frames"). A read surer than ``high`` of
    no known layout is in doubt too: the second member may read the plate one character
    away that :func:`pick_read` prefers (``E52CNW`` at 0.98, the Romanian band read into
    the ``B``: models/recogniser.md, "A plate one character away in video frames").
    """

    def __init__(
        self, members: Sequence[Recogniser], doubt: tuple[float, float] | None = None
    ) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one recogniser")
        charsets = {m.charset for m in members}
        if len(charsets) != 1:
            raise ModelError("the recognisers of an ensemble must share one charset")
        if doubt is not None and not 0.0 <= doubt[0] <= doubt[1] <= 1.0:
            raise ValueError(f"doubt must be (low, high) with 0 <= low <= high <= 1, got {doubt}")
        self.members = tuple(members)
        self.doubt = doubt
        self.version = "+".join(m.version for m in members)
        self._last = members[0]
        self.last_reads: tuple[tuple[str, float], ...] = ()
        """Every member's read behind the last kept read, in member order (the reader's
        vote over a crop's views counts them all)."""

    def read(self, crop: Image) -> tuple[str, float]:
        """The kept one-line read (:meth:`Recogniser.read`) of the members."""
        gray = _gray(crop)
        return self._read(lambda member: member.read_gray(gray))

    def read_best(self, crop: Image | npt.NDArray[np.uint8]) -> tuple[str, float]:
        """The kept read (:meth:`Recogniser.read_best`) of the members."""
        gray = _gray(crop)
        return self._read(lambda member: member.read_best(gray))

    def _read(self, read: Callable[[Recogniser], tuple[str, float]]) -> tuple[str, float]:
        """The kept read of the first member and, unless it is outside ``doubt``, the others."""
        first = read(self.members[0])
        doubtful = (
            self.doubt is None
            or self.doubt[0] <= first[1] <= self.doubt[1]
            or (first[1] > self.doubt[1] and not is_known_plate(first[0]))
        )
        return self._pick([first, *(read(m) for m in self.members[1:] if doubtful)])

    def alternatives(self, raw: str) -> list[str]:
        """The alternatives of the member whose read was kept last."""
        return self._last.alternatives(raw)

    def _pick(self, reads: list[tuple[str, float]]) -> tuple[str, float]:
        kept = pick_read(reads)
        self._last = self.members[kept]
        self.last_reads = tuple(reads)
        return reads[kept]


def pick_read(reads: Sequence[tuple[str, float]]) -> int:
    """Index of the read an ensemble keeps among its members' ``(raw, confidence)`` reads.

    Only reads that count as a plate (:func:`counts_as_plate`: a valid plate of a known format,
    or a sure read of a layout the grammar does not know) compete when there are any;
    among them, the canonical text read by the most members wins, then a plate read that
    holds another competing plate read's characters, in order, and more (:func:`fuller_text`:
    a dropped character, often at the crop's edge, is the commonest CTC error and
    comes with high confidence: ``FC-768-J`` at 0.99 for ``FC-768-JZ``), then the more
    confident read. A read of no known layout that is a known plate read with just one
    character more is not the fuller one (:func:`_one_glyph_past_a_layout`). Before the
    confidence, a read of no known layout loses to a known plate read one character away
    (:func:`_one_character_apart`): the grammar is the likelier spelling where the model
    doubts one glyph (``E52CNW`` at 0.97, the Romanian band's edge read into the ``B``,
    against ``B-52-CNW`` at 0.86; ``B127G1A`` against ``B-127-GTA``; models/recogniser.md,
    "A plate one character away"). Ties go to the earlier member."""
    if not reads:
        raise ValueError("no reads to pick from")
    counting = [i for i, (raw, conf) in enumerate(reads) if counts_as_plate(raw, conf)]
    pool = counting or list(range(len(reads)))
    text = {i: canonicalize(reads[i][0])[0] for i in pool}
    votes = Counter(text.values())
    bare = {i: text[i].replace("-", "") for i in pool}
    known = {i: is_known_plate(reads[i][0]) for i in pool}
    fuller = {
        i: bool(counting)
        and any(
            fuller_text(bare[i], bare[j])
            and not _one_glyph_past_a_layout(bare[i], known[i], bare[j], known[j])
            for j in pool
        )
        for i in pool
    }
    misspelt = {
        i: bool(counting)
        and not known[i]
        and any(known[j] and _one_character_apart(bare[i], bare[j]) for j in pool)
        for i in pool
    }
    return max(pool, key=lambda i: (votes[text[i]], fuller[i], not misspelt[i], reads[i][1], -i))


def voted_by_position(
    kept: tuple[str, float], reads: Sequence[tuple[str, float]]
) -> tuple[str, float] | None:
    """The read to keep instead of ``kept`` (``(raw or canonical text, confidence)``), from
    a vote slot by slot among ``reads`` (every member's read of every view of one plate);
    None to keep it.

    Only reads that count as plates (:func:`counts_as_plate`) of ``kept``'s shape vote
    (the same canonical text with each digit, each letter a slot: ``DU-15811`` and
    ``DJ-15811`` share one, ``D-15811`` does not), ``kept`` among them. Each slot takes
    the character the most confidence backs; the voted text replaces ``kept`` only when
    it was read whole (its surest read is returned) and at least :data:`SLOT_VOTE_MIN_READS`
    reads voted. Why: the views' picks (:func:`pick_read`) keep the surer of reads that
    differ in one character, each view with its own majority, so a confusion read once
    surely beat the character three reads agree on (``HKZE-888`` at 0.95 against
    ``WKZE-888`` read three times at 0.90-0.94; ``39669-A-39`` at 0.95 where more of the
    reads' confidence backs a ``5`` in the region: ``39669-A-59``). A text no read spelt
    whole is not made up from parts (models/recogniser.md, "A vote slot by slot")."""
    if not counts_as_plate(*kept):
        return None
    text = canonicalize(kept[0])[0]
    shape = _shape(text)
    group = []
    for raw, confidence in reads:
        other = canonicalize(raw)[0]
        if _shape(other) == shape and counts_as_plate(raw, confidence):
            group.append((other, confidence))
    if (text, kept[1]) not in group:
        group.append((text, kept[1]))
    if len(group) < SLOT_VOTE_MIN_READS:
        return None
    slots: list[dict[str, float]] = [{} for _ in shape]
    for other, confidence in group:
        for slot, ch in zip(slots, other, strict=True):
            slot[ch] = slot.get(ch, 0.0) + confidence
    voted = "".join(max(slot, key=slot.__getitem__) for slot in slots)
    backing = [confidence for other, confidence in group if other == voted]
    if voted == text or not backing:
        return None
    return voted, max(backing)


SLOT_VOTE_MIN_READS: Final = 3
"""Reads of one shape (``kept`` included) from which :func:`voted_by_position` votes: of
two, the surer read already wins every slot where they differ."""


def _shape(text: str) -> str:
    """``text`` with each digit a ``9`` and each letter an ``A`` (separators kept)."""
    return "".join("9" if ch.isdigit() else "A" if ch.isalpha() else ch for ch in text)


def _one_glyph_past_a_layout(text: str, text_known: bool, other: str, other_known: bool) -> bool:
    """True when ``text``, of no known layout, is the known plate ``other`` with one
    character more. Why: a European plate's band, coat of arms or shield reads as one more
    character, and surely (``74718LSC`` for the Spanish ``4718-LSC``, ``SC0949AD`` for the
    Slovak ``SC-949-AD``, ``18MCK049`` for the Belgian ``1-MCK-049``). A fuller read of a
    known layout (``FC-768-JZ`` against ``FC-768-J``) still wins, and so does one two or
    more characters longer (``GD9751J`` against ``GD-751``): an emblem is one glyph
    (models/recogniser.md, "One glyph past a layout")."""
    return other_known and not text_known and len(text) == len(other) + 1


def _one_character_apart(text: str, other: str) -> bool:
    """True when ``text`` and ``other`` have one length and differ in one place."""
    return len(text) == len(other) and sum(a != b for a, b in zip(text, other, strict=True)) == 1


def fuller_text(text: str, other: str) -> bool:
    """True when ``text`` is longer than ``other`` and holds all of its characters in
    order (``other`` is ``text`` with characters dropped)."""
    if len(text) <= len(other):
        return False
    rest = iter(text)
    return all(ch in rest for ch in other)


FIT_MAX_ADDED: Final = 1
"""The most characters the grammar's path may add to a greedy read (:meth:`Recogniser._fitted`):
one dropped glyph; more is a plate made up through blanks (models/recogniser.md, "Layouts
that do not exist, and no plate made up by the grammar")."""

UNKNOWN_KEEP_RATIO: Final = 0.05
"""A greedy read of an unknown layout is kept unless the best path that fits a known
layout is at least this share as likely (the thin alif read as ``1`` costs far less)."""

SURE_UNKNOWN: Final = 0.8
"""Confidence from which the grammar may not drop characters of a read of an unknown layout."""

CHOICE_MIN_CONFIDENCE: Final = 0.05
"""A plate read less sure than this does not count as one in :func:`choose_read`: a path the
grammar forces through blanks is no read of the crop (those forced through empty reads were
at most 0.04 sure on every real set: models/recogniser.md, "No fitting of empty reads")."""

TWO_LINE_PREFERRED_ASPECT: Final = 1.9
"""Below this crop aspect (width / height) a valid two-line read wins a near tie."""

TWO_LINE_MARGIN: Final = 0.1
"""How close two valid reads' confidences must be for the aspect to decide."""

SURE_TWO_LINE: Final = 0.9
"""Confidence from which a valid two-line read of a crop narrower than
:data:`TWO_LINE_PREFERRED_ASPECT` is kept without reading the crop as one line."""


def choose_read(
    one_line: tuple[str, float], two_line: tuple[str, float], aspect: float
) -> tuple[str, float]:
    """The read kept for a crop of ``aspect`` (width / height) read both ways.

    - exactly one read counts as a plate: that read. A read counts when it is a
      valid plate (Moroccan, French or European, canonical text per
      :mod:`agent.reader.plate_text`) or a plate of a layout the grammar does not
      know read at least :data:`SURE_UNKNOWN` sure (:func:`_sure_unknown`), and
      in either case at least :data:`CHOICE_MIN_CONFIDENCE` sure: a square Dutch
      ``14 / VR-LV`` read as two lines at 0.99 must not lose to a one-line read
      that happens to spell a Moroccan plate at 0.005, nor a square Icelandic
      ``SY / 250`` read as two lines ``9Y250`` at 0.5 to its one-line read fitted
      to ``4-B-2`` at 0.0001 (as a video frame, the second member then reads it
      ``SY250`` at 0.89);
    - both count: the two-line read when ``aspect`` is below
      :data:`TWO_LINE_PREFERRED_ASPECT` (1.9) and the confidences are within
      :data:`TWO_LINE_MARGIN` (0.1) of each other, else the more confident read;
    - neither counts: the more confident read.

    Ties go to the one-line read.
    """
    one_ok = counts_as_plate(*one_line) and one_line[1] >= CHOICE_MIN_CONFIDENCE
    two_ok = counts_as_plate(*two_line) and two_line[1] >= CHOICE_MIN_CONFIDENCE
    if one_ok != two_ok:
        return one_line if one_ok else two_line
    if (
        one_ok
        and aspect < TWO_LINE_PREFERRED_ASPECT
        and abs(one_line[1] - two_line[1]) <= TWO_LINE_MARGIN
    ):
        return two_line
    return two_line if two_line[1] > one_line[1] else one_line


class _Greedy:
    """A greedy read kept for :meth:`Recogniser.alternatives` (its own probability copy)."""

    __slots__ = ("probs", "raw", "steps", "tokens")

    def __init__(self, probs: npt.NDArray[np.float32]) -> None:
        self.probs = probs
        self.raw = ""
        self.tokens = ""
        self.steps: list[int] = []

    def keep(self, tokens: str, steps: list[int], raw: str, probs: npt.NDArray[np.float32]) -> None:
        self.tokens, self.steps, self.raw = tokens, steps, raw
        np.copyto(self.probs, probs)


def _gray(crop: Image | npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """The grayscale of a BGR crop (a grayscale crop as is); ``ValueError`` if malformed."""
    if crop.ndim == 3 and crop.shape[2] == 3 and crop.shape[0] >= 2 and crop.shape[1] >= 2:
        return np.asarray(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
    if crop.ndim == 2 and crop.shape[0] >= 2 and crop.shape[1] >= 2:
        return np.asarray(crop, dtype=np.uint8)
    raise ValueError(f"crop must be H x W x 3 or H x W with H, W >= 2, got {crop.shape}")


BAND_GLYPHS: Final = "1IF"
"""What the EU band's ``F`` or the edge of a French plate's band or region logo reads as."""


def _band_glyph_dropped(raw: str, fitted: str) -> bool:
    """True when ``fitted`` is ``raw`` without a first or last :data:`BAND_GLYPHS` glyph and
    is a French SIV plate: the band read as one more character (``1ER140CY``). Only then:
    other layouts (a Czech ``1AB2345``, an eight-character ``VNK296GP``) lose a real
    character that way."""
    if len(raw) != len(fitted) + 1:
        return False
    if not (
        (raw[0] in BAND_GLYPHS and raw[1:] == fitted)
        or (raw[-1] in BAND_GLYPHS and raw[:-1] == fitted)
    ):
        return False
    return is_french_siv(canonicalize(fitted)[0])


def _inner_glyph_dropped(raw: str, fitted: str) -> bool:
    """True when ``fitted`` is ``raw`` less one character inside it (neither its first nor its
    last, nor a repeat of a neighbour) and ``raw`` has no Arabic letter.

    Why: the grammar's path may skip a glyph the model read by spending its steps on the
    blank, and its confidence, the product of the slots' peaks, no longer holds that glyph's
    peak: a path one character shorter can look surer than the read itself. At a line's ends
    the skipped glyph is often no character (a sticker, the band, the frame's edge); inside
    a Latin line it is one of the plate's. A French ``FS 371 VQ`` read ``FS371V0`` at 0.67
    was fitted to a German-shaped ``FS-3710`` at 0.97, its ``V`` skipped, and that known,
    surer plate won over the other view's ``FS-371-VQ`` (models/recogniser.md, "No glyph
    skipped inside a Latin read"). A Moroccan read is left to the grammar: its thin alif
    is often read as a ``1`` beside the letter, which the path rightly skips."""
    if len(raw) != len(fitted) + 1 or has_arabic_letter(raw):
        return False
    return any(
        raw[:i] + raw[i + 1 :] == fitted and raw[i] not in (raw[i - 1], raw[i + 1])
        for i in range(1, len(raw) - 1)
    )


def _siv_but_one_confusion(raw: str, fitted: str) -> bool:
    """True when ``fitted`` is a French SIV plate (``AB-123-CD``) that differs from ``raw``
    in exactly one character, of the same confusion class (``0``/``D``/``Q``, ``8``/``B``,
    ``5``/``S`` ...: agent.watchlist.confusion). French cars are the foreign plates met most
    in Morocco, and in the SIV layout every position is a letter or a digit, so a ``0``
    among its letters is a ``D`` or a ``Q``. Only SIV: a digit-only or a free-form read
    fitted the same way to another layout (``1000051`` to an FNI ``1000-O-51``) was
    wrong every time it was tried on the mixed-plates validation photos."""
    if len(raw) != len(fitted) or fold(raw) != fold(fitted):
        return False
    if sum(a != b for a, b in zip(raw, fitted, strict=True)) != 1:
        return False
    return is_french_siv(canonicalize(fitted)[0])


def _sure_unknown(raw: str, confidence: float) -> bool:
    """True for a read of a layout the grammar does not know, at least :data:`SURE_UNKNOWN`
    sure, with a Latin letter: digits alone are more often a Moroccan plate whose letter
    was missed (a motorcycle's ``8 / 013353`` read on one line) than a foreign plate."""
    return (
        confidence >= SURE_UNKNOWN
        and any(ch.isalpha() for ch in raw)
        and is_plausible_unknown(raw, confidence)
    )


def counts_as_plate(raw: str, confidence: float) -> bool:
    """True when a raw read counts as a plate (in :func:`choose_read`, :func:`pick_read`):
    a valid plate of a known format, or a sure read of a layout the grammar does not know."""
    return is_known_plate(raw) or _sure_unknown(raw, confidence)
