"""The one configuration schema: a TOML file validated into typed, frozen objects.

Every section forbids unknown keys so a typo is refused at start, and every error
names the dotted key that was wrong. Validation is pure: it never touches the
disk or the network; directories are created by the code that uses them.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agent.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODELS_DIR = PROJECT_ROOT / "models"
DEFAULT_SAMPLES_DIR = PROJECT_ROOT / "samples"

DeviceId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")]
Zoom = Annotated[float, Field(ge=1.0, le=20.0)]
"""A second-look window's width as a multiple of the plate box's width."""
Share = Annotated[float, Field(ge=0.0, le=1.0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceConfig(_Section):
    """Who this device is and where it keeps its state."""

    id: DeviceId = "cam-demo-01"
    """Device identifier: lower-case letters, digits and dashes; part of every MQTT topic."""
    state_dir: Path = Path("/var/lib/raqib")
    """Outbox, watchlist cache, evidence. Under systemd this is StateDirectory=."""
    keys_dir: Path | None = None
    """Device signing key (``device.key``, made on first start) and HQ's public keys
    (``hq-encryption.pub``, ``hq-signing.pub``, put there at enrolment);
    default ``{state_dir}/keys``."""

    @property
    def keys_path(self) -> Path:
        return self.keys_dir if self.keys_dir is not None else self.state_dir / "keys"


class CaptureConfig(_Section):
    """Where frames come from."""

    source: Literal["file", "images", "v4l2", "rtsp", "picamera2"] = "file"
    uri: str = str(DEFAULT_SAMPLES_DIR / "street_clip.mp4")
    """File path, image folder, /dev/videoN (or index), rtsp:// URL; ignored for picamera2."""
    width: int = Field(1280, ge=160, le=3840)
    height: int = Field(720, ge=120, le=2160)
    fps: float = Field(25.0, gt=0, le=120)
    realtime: bool = False
    """Replay files at their recorded speed (True) or as fast as the reader keeps up."""
    loop: bool = False
    """Replay the file again when it ends (bench and soak runs)."""
    queue_size: int = Field(4, ge=1, le=256)
    """Frames held between capture and reader; the oldest is dropped when full."""
    reconnect_s: float = Field(2.0, gt=0, le=300)
    """Wait before reopening a live source that failed."""


class ReaderConfig(_Section):
    """The on-device plate reader (detector + recogniser, int8 TFLite)."""

    models_dir: Path = DEFAULT_MODELS_DIR
    num_threads: int = Field(1, ge=1, le=8)
    min_confidence: float = Field(0.5, ge=0.0, le=1.0)
    """Reads below this confidence are discarded before tracking."""
    still_min_confidence: float = Field(0.4, ge=0.0, le=1.0)
    """The same for photos (``raqib read`` of images, ``raqib eval``), which a person reads
    with each plate's confidence beside it and no tracker votes over frames: on the
    held-out photos the reads from 0.4 to 0.5 were 4 plates read right (0.41-0.43) that
    0.5 left unreported, 1 wrong and 4 plausible reads of plates labelled without text,
    and 9 texts that are no plate (models/recogniser.md, "The photos' floor")."""
    every_nth_frame: int = Field(1, ge=1, le=30)
    deep_reads: bool = False
    """Also read, in a worker process, one video frame at a time that shows a plate not
    yet read deep (or a plate box left unread) with the photo settings (``still_*``: both
    recognisers, every photo pass), and let those reads decide their tracks
    (agent.deep_reads): the held-out Moroccan scenes read as video frames 239 -> 284 of
    299 plates exact. Off by default: it keeps one more core busy while new plates are in
    view (100-300 ms a frame on an x86 core)."""
    detector: Literal["auto", "model", "contour"] = "auto"
    """Plate localiser: the trained ``detector.tflite`` ("model"), the classical
    OpenCV one ("contour"), or "auto": the model when ``models_dir`` has it."""
    grey_pass: bool = True
    """The model detector also looks at the frame without its colours (dusk and night
    dashcam plates under a colour cast); it doubles the detector's time on such frames."""
    grey_pass_min_cast: float = Field(0.5, ge=0.0, le=10.0)
    """The grey pass runs only on frames with at least this colour cast (the channel
    means' pairwise differences over their mean: daylight frames about 0.15, night
    dashcam frames about 2); 0: on every frame (agent.reader.detector.GREY_MIN_CAST)."""
    tile_above: int = Field(2560, ge=0, le=100_000)
    """Video frames with a side longer than this (pixels) also get the detector's tiled
    pass (overlapping windows seen at half size: far plates); 0: never. Live video
    keeps it for 4K: at 1280 x 720 it would cost 4 more model runs a frame."""
    still_tile_above: int = Field(1000, ge=0, le=100_000)
    """The same for still photos (``raqib read`` of images, ``raqib eval``): a photo is
    read once, so from 1000 px it gets the tiles (held-out dashcam frames: 64 -> 85 %
    of the plates found with detector 2.1.0)."""
    still_max_side: int = Field(1920, ge=0, le=100_000)
    """Photos with a side longer than this (pixels) are shrunk to it before they are read;
    the plates' boxes are still given in the photo's own pixels. 0: never. Why: the tiled
    pass shows a photo at half size in windows of 768 x 448 pixels, so a 12-megapixel
    photo gets 40-odd tiles whose other boxes crowd its plate out of the eight that are
    read (held-out French photos enlarged to 4000 px: 83.0 % exact; shrunk to 1920:
    95.7 %, models/detector.md "Photos of every size"). Video frames are not shrunk."""
    still_far_plates: bool = True
    """Photos no larger than ``still_max_side`` are also searched for far plates (boxes
    narrower than 40 px clear of the plates already found; the best four are read) by
    the detector's tiles at the photo's own resolution: its usual tiled pass sees it at
    half size, where a 30 px plate is 15 px wide and 3 px tall. Real plates shrunk to
    20-40 px in 1280 x 720 frames: Moroccan 30 -> 55 %, French 45 -> 70 % found
    (models/detector.md, "Far plates in photos"), no new text reported on the held-out
    photos, for 31-51 % more time per photo. Video frames: never (their 25 ms budget)."""
    zooms: list[Zoom] = Field(default_factory=lambda: [5.0], max_length=8)
    """Second look for video frames: each of the best ``zoom_boxes`` plates found is looked
    at again through windows this many times its width ([] : never). One model run per
    zoom and plate: one zoom on the best two plates keeps a 1280 x 720 frame under 25 ms
    (p99 21 ms; Moroccan scenes 79.9 -> 86.3 %, dashcam 84.0 -> 92.3 % of the plates
    boxed)."""
    zoom_boxes: int = Field(2, ge=0, le=8)
    """How many of a video frame's best boxes get the second look."""
    still_zooms: list[Zoom] = Field(default_factory=lambda: [3.0, 4.0, 5.0, 6.0], max_length=8)
    """The same for still photos: boxes found whole far more often (Moroccan scenes
    79.9 -> 88.5 %, dashcam 88.9 -> 96.7 % at IoU 0.5), for 4 model runs per plate."""
    still_zoom_boxes: int = Field(4, ge=0, le=8)
    """How many of a photo's best boxes get the second look."""
    recognisers: int = Field(2, ge=1, le=4)
    """How many of the shipped recognisers (``recogniser.tflite``, then the ensemble's
    other members, ``recogniser_2.tflite``) read each plate of a video frame; at most
    as many as ``models_dir`` ships. The members after the first read only the plates
    the first reads in doubt (``recognisers_doubt``): a frame's p99 stays under 25 ms,
    and the held-out Moroccan scenes read as video frames gain 221 -> 235 of 299 plates
    (models/recogniser.md, "Second reads for video frames")."""
    recognisers_doubt: tuple[Share, Share] = (0.05, 0.95)
    """``(low, high)``: a video frame's plate is read by the other members only when the
    first member's read has a confidence from ``low`` to ``high``; a surer read stands
    alone, one below ``low`` is a box that holds no plate. ``(0, 1)``: always, as photos."""
    wide_view: bool = False
    """Read each box of a video frame also from a wider crop (12 % of its width more on
    each side, 20 % of its height above and below) and keep the better read: off, as the
    next frames read a tracked plate again (but see ``daylight_wide_view``)."""
    daylight_wide_view: bool = True
    """With ``wide_view`` off, a video frame under no colour cast (below
    ``grey_pass_min_cast``: daylight, where the grey pass does not run) is still read with
    the wider view, in the time the grey pass would have taken; frames under a cast (dusk,
    night) are not. Held-out Moroccan scenes read as video frames 243 -> 253 of 299, the
    night ride unchanged; a daylight clip frame +2.8 ms (models/recogniser.md, "The wider
    view for daylight video frames")."""
    still_wide_view: bool = True
    """The same for photos (a detector box a little inside the plate cuts a character the
    recogniser then drops: mixed validation photos 62.1 -> 68.1 % exact); a plate crop
    (``raqib read --crops``, ``raqib eval`` of crops) is also read with margins of its own
    edge pixels (square European crops 57.0 -> 62.0 %, Moroccan crops 81.7 -> 82.4 %)."""
    dark_plates: bool = False
    """Also read each video frame inverted, for plates with light characters on a dark
    ground (black classic French plates): off, as it adds a fifth to a third to the
    reader's time, where a tracked plate is read again on the next frames."""
    still_dark_plates: bool = True
    """The same for photos (``raqib read``, ``raqib eval``) and plate crops: the detector
    and recogniser learnt dark characters on light plates and missed a black French plate
    that they find and read inverted. A read of the inverted photo or crop counts only on
    a dark ground, read surely (agent.reader.pipeline, ``DARK_*``); it adds a fifth to a
    third to a photo's time and doubles a dark crop's."""
    dark_boxes: bool = True
    """Read a box of a video frame again inverted when the detector is sure of it, its ground
    is dark, and its read is unsure or its middle mostly dark (a sure read is replaced only
    by a plate of a known layout; agent.reader.pipeline, ``DARK_*``): the detector
    finds black plates with light characters that the recogniser, which learnt dark
    characters, misreads. On since 2026-12-05 (ninth session): held-out French photos with
    their plates recoloured as classic black plates (``models/realdata.py --recoloured``),
    read as video frames, 13 -> 27 of 47, the mixed validation photos 69 -> 71 of 116, the
    other held-out sets unchanged; the sample clip's frames take the same time on average
    and about 1 ms more at p99, real scenes read as video frames 0.3-1.7 ms more on average,
    paid for by the faster letterbox of the same session (models/recogniser.md, "Dark
    boxes"). Off for a fleet that never meets dark plates and wants the time back."""
    still_dark_boxes: bool = True
    """The same for photos, beside their inverted pass (``still_dark_plates``): the
    recoloured black French photos 33 -> 38 of 47, the other held-out sets unchanged."""
    extended_boxes: bool = False
    """Read a box of a video frame again from a crop half its width longer on each side
    (and 30 % of its height above and below) when its read is not near 0 (0.05), and keep
    that read when it replaces an unsure read (a sure plate of another text, no shorter) or
    a sure one (a sure plate of a known layout holding all its characters and more): the
    upright box of a tilted plate often holds only a part of it. Off: one more read of
    most plates a frame holds, 3-4 ms a frame on the held-out sets read as video frames
    (Moroccan scenes 235 -> 239 of 299), where the next frames read a tracked plate
    again."""
    still_extended_boxes: bool = True
    """The same for photos (models/recogniser.md, "Extended boxes")."""
    snap_boxes: bool = False
    """Snap the box of each plate read in a video frame to the plate's own edges, found
    around its row of characters, when the detector's box is loose around it
    (agent.reader.plate_edges): off, as it costs 2-4 ms a plate, and video boxes are
    only shown, where a photo's box is also measured."""
    still_snap_boxes: bool = True
    """The same for photos: a close plate's box often holds its holder and a band of the
    car (IoU 0.4-0.5 with the plate); snapped, Moroccan scene photos 297 -> 301 of 313
    plates boxed at IoU 0.5, the other held-out sets unchanged."""
    tilted_plates: bool = False
    """Also read a video frame turned by 20 degrees each way when one of its boxes has no
    sure read or a sure read's characters slope by 5 degrees or more, for plates tilted
    by about as much: off, as it costs two more detector passes a frame."""
    still_tilted_plates: bool = True
    """The same for photos: a plate tilted 15-25 degrees is boxed by a part and read
    partly; level in the turned photo it is boxed whole and read (agent.reader.pipeline,
    ``TILT_*``, models/detector.md "Tilted plates"). A plate crop read unsure is also
    read turned by 10 degrees each way."""
    near_plates: bool = False
    """Also look for a plate filling most of a video frame in the frame shrunk to a third
    (agent.reader.pipeline, ``NEAR_*``): off, as it costs two more detector runs a frame."""
    still_near_plates: bool = True
    """The same for photos: a plate wider than about half the photo (a body camera beside
    the car) is wider than any the detector learnt and is found only shrunk."""
    rectified_plates: bool = False
    """Read a plate of a video frame again, straightened front on (its paper's four corners
    warped to a rectangle, agent.reader.rectify), when its first read is unsure: off, as
    the next frames read a tracked plate again."""
    still_rectified_plates: bool = True
    """The same for photos and plate crops: a plate seen at an angle is read short of its
    far characters, and unsure; straightened, a sure read of another text replaces it
    (models/recogniser.md, "Straightened plates"). A plate crop still unsure then takes
    the text its views' reads vote for ("Voted views"; also with ``still_tilted_plates``)."""
    levelled_plates: bool = True
    """Read a plate of a video frame whose row of characters slopes by 5 degrees or more
    again, turned level about its box (agent.reader.rotation.levelled), and keep that read
    under the rule of ``still_levelled_plates``. On since 2026-12-05 (ninth session): a
    camera held askew sees a plate sloping in every frame, so the next frames do not put
    back the character an upright box drops. The slope is measured under one adaptive
    threshold instead of a photo's four (agent.reader.plate_edges.QUICK_SLOPE_THRESHOLDS).
    Held-out sets read as video frames: Moroccan scenes 227 -> 239 of 299, French yellow
    42 -> 43 of 47, mixed photos 71 -> 72 of 116, no read lost or text added; the sample
    clip's frames about 0.4 ms more on average, real scenes about 1.1 ms
    (models/recogniser.md, "Levelled plates")."""
    still_levelled_plates: bool = True
    """The same for photos, and for plate crops however unsure: a tilted plate read from its
    upright box drops or changes a character, surely (``80615-A-40`` read ``8065-A-40`` at
    0.96, ``11487-B-40`` ``81487-B-40``); levelled, it is read whole. The levelled read
    replaces a sure read only when it is a sure plate of a known layout that holds all its
    characters and more, or as many, more surely (held-out Moroccan scenes 281 -> 287 of
    299, French photos 44 -> 45 of 47, Moroccan crops 113 -> 116 of 131, no read lost:
    models/recogniser.md, "Levelled plates")."""
    bare_strokes: bool = True
    """Put back a bare stroke (an ``I`` or a plain ``1``) that the recogniser skipped where
    the strip it read shows one between two characters and no character it emitted lies
    over it (agent.reader.strokes): the commonest error on European plates (``BIA / KY73``
    read ``BAKY73``); square European crops 184 -> 188 of 258, no other held-out read
    changed (models/recogniser.md, "Bare strokes"). Video frames and photos alike: one
    connected-components pass on the 32 x 128 strip per read."""
    blank_colours: bool = False
    """Read a plate of a video frame again with its coloured emblems (seals, coats of arms,
    stickers, side bands) painted in its paper's grey (agent.reader.colours), keeping that
    read when it is a plate read more surely: off, as it costs a read per coloured box."""
    still_blank_colours: bool = True
    """The same for photos and plate crops: a German plate's seals or a Swiss plate's
    shields are read as one more character otherwise (models/recogniser.md, "Coloured
    emblems")."""
    still_recognisers: int = Field(2, ge=1, le=4)
    """The same for photos and crops (``raqib read``, ``raqib eval``), read once: the
    ensemble of two reads 29 more of the 552 held-out and validation plates than the
    first member alone (models/recogniser.md, Ensemble and Second member 4.4.0)."""

    @model_validator(mode="after")
    def _doubt_band(self) -> ReaderConfig:
        low, high = self.recognisers_doubt
        if low > high:
            raise ValueError(
                f"recognisers_doubt must be (low, high) with low <= high, got {low}, {high}"
            )
        return self


class TrackerConfig(_Section):
    """Multi-frame voting: one vehicle passing makes one read."""

    gap_s: float = Field(1.0, gt=0, le=30)
    """A track closes when its plate has not been seen for this long."""
    min_reads: int = Field(2, ge=1, le=100)
    """A track needs this many frame reads before it may raise a hit."""
    retention_s: float = Field(300.0, ge=0, le=86400)
    """Non-matching reads are kept in memory this long, then forgotten (privacy)."""
    fast_alert: bool = True
    """Alert on a track's first read when it exactly names a listed plate and is at least
    ``fast_min_confidence`` sure, instead of waiting ``min_reads`` (the alert-latency fix)."""
    fast_min_confidence: float = Field(0.95, ge=0.0, le=1.0)
    realert_s: float = Field(10.0, ge=0, le=3600)
    """A listed plate hit again within this time is the same passing: no second alert or hit."""

    @property
    def fast_alert_threshold(self) -> float | None:
        """What ``Pipeline(fast_min_confidence=...)`` takes: None when the fast path is off."""
        return self.fast_min_confidence if self.fast_alert else None


class WatchlistConfig(_Section):
    """The signed list of wanted vehicles, cached in ``{state_dir}/watchlist.sqlite``."""

    root_path: Path | None = None
    """Trusted root document installed at enrolment; default ``{keys_dir}/watchlist-root.json``."""
    fuzzy: bool = True
    fuzzy_min_confidence: float = Field(0.8, ge=0.0, le=1.0)
    """A fuzzy (OCR-confusion) match needs a read at least this confident."""
    edits: Literal["off", "malformed", "always"] = "malformed"
    """When a one-character insertion/deletion may match: never, only for reads that are not
    a well-formed plate, or always (more recall, many more false alarms on large lists)."""
    fuzzy_max_changes: int = Field(1, ge=1, le=16)
    """Characters a fuzzy match may change in the read (a confused glyph, a dropped or extra
    one; ``O``/``0`` and ``I``/``1`` count none): more lets reads of unlisted cars reach
    entries several look-alikes away (docs/watchlist.md, "Matching")."""
    key_policy: Literal["memory", "grace"] = "memory"
    """Where the key of the encrypted list cache lives: ``memory`` (default) only in memory,
    sent by HQ at each connect, so a powered-off lost camera reveals no plate; ``grace`` also
    keeps HQ's sealed key message on disk for ``grace_hours`` so the device can boot offline
    with its list (whoever takes the storage in that window can read the list)."""
    grace_hours: float = Field(72.0, gt=0, le=24 * 31)
    key_wait_s: float = Field(0.0, ge=0, le=600)
    """At start, wait up to this long for the key and a list before reading plates."""


class MqttConfig(_Section):
    """Connection to the HQ broker."""

    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    topic_prefix: str = Field("raqib/v1", pattern=r"^[a-z0-9_/-]+[a-z0-9_-]$")
    keepalive_s: int = Field(30, ge=5, le=3600)
    ack_timeout_s: float = Field(10.0, gt=0, le=600)
    """A message not acknowledged by HQ within this time is sent again."""
    reconnect_max_s: float = Field(30.0, ge=1, le=3600)
    tls_ca: Path | None = None
    """CA certificate of the broker; setting it turns TLS on."""
    tls_cert: Path | None = None
    """This client's certificate (CN = device id); the broker requires one."""
    tls_key: Path | None = None
    heartbeat_s: float = Field(60.0, ge=1, le=86400)
    """How often the device publishes its retained status (battery, storage, queue depth)."""

    @model_validator(mode="after")
    def _tls_pair(self) -> MqttConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        return self


class AlertConfig(_Section):
    """How the officer is told about a hit."""

    adapter: Literal["simulated", "gpio"] = "simulated"
    gpio_led: int = Field(17, ge=0, le=40)
    gpio_buzzer: int = Field(27, ge=0, le=40)
    disposition_window_s: float = Field(60.0, ge=1, le=3600)
    """After an alert, the record button gives the officer's verdict on it this long."""
    long_press_s: float = Field(1.5, ge=0.3, le=10)
    """A press shorter than this confirms the alert; held at least this long, rejects it."""


class GnssConfig(_Section):
    """Where the position attached to each hit comes from."""

    adapter: Literal["none", "replay", "serial", "gpsd"] = "replay"
    path: Path = DEFAULT_SAMPLES_DIR / "route.nmea"
    """NMEA log to replay (simulator) or serial device of the receiver."""
    gpsd_port: int = Field(2947, ge=1, le=65535)
    max_age_s: float = Field(10.0, gt=0, le=3600)
    """A fix older than this is not attached to a hit."""


class HqConfig(_Section):
    """The HQ side (ingest, admin, audit)."""

    database_url: str = "sqlite:////var/lib/raqib-hq/hq.sqlite"
    """SQLAlchemy URL: ``sqlite:///PATH`` or ``postgresql://user@host/db`` (psycopg 3)."""
    workers: int = Field(1, ge=1, le=64)
    """Ingest worker processes sharing the broker subscription."""
    keys_dir: Path = Path("/var/lib/raqib-hq/keys")
    """HQ's private message keys and its certificate authority."""


class ConsoleConfig(_Section):
    """The HQ web console (``raqib hq console``) for operators, fleet admins and auditors."""

    host: str = "127.0.0.1"
    """Address the console listens on; put a TLS-terminating proxy in front, or set ``tls_*``."""
    port: int = Field(8080, ge=1, le=65535)
    tls_cert: Path | None = None
    """Serve HTTPS directly with this certificate (PEM) and ``tls_key``."""
    tls_key: Path | None = None
    secure_cookies: bool = True
    """Mark the session cookie ``Secure`` (HTTPS only); turn off only for plain HTTP on loopback."""
    tile_url: str = Field("", max_length=512, pattern=r"^(https?://[^\s\"'<>]+)?$")
    """Map tiles, e.g. ``https://tiles.hq.example/{z}/{x}/{y}.png``; empty: a plain plot."""
    session_lifetime_s: float = Field(8 * 3600.0, ge=60, le=7 * 86400)
    """A session ends this long after login, whatever the activity."""
    idle_timeout_s: float = Field(1800.0, ge=60, le=86400)
    """A session ends after this long without a request."""
    kdf_memory_kib: int = Field(65536, ge=8192, le=4_194_304)
    """Argon2id memory per password hash (RFC 9106's second recommended set: 64 MiB, t=3, p=4).
    A stored hash made with other parameters is re-made at the user's next login."""
    kdf_time_cost: int = Field(3, ge=1, le=16)
    kdf_parallelism: int = Field(4, ge=1, le=16)
    lockout_failures: int = Field(5, ge=2, le=100)
    """Failed logins in a row that lock an account (and the address they came from)."""
    lockout_s: float = Field(900.0, ge=10, le=86400)
    """How long a locked account stays locked."""
    offline_after_s: float = Field(180.0, ge=5, le=86400)
    """A device with no message for this long shows as offline even without its last will."""
    poll_s: float = Field(2.0, ge=0.5, le=60)
    """How often pages with live data ask the server for news."""
    watchlist_root: Path | None = None
    """The fleet's trusted watchlist root (``watchlist-root.json``): an uploaded bundle must
    verify against it before the console publishes it; unset: the console publishes nothing."""
    crl_path: Path | None = None
    """Where revoking a device's certificate writes the broker's CRL (unset: the registry only)."""

    @model_validator(mode="after")
    def _tls_pair(self) -> ConsoleConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        return self


class BoardConfig(_Section):
    """Board health sources."""

    power: Literal["simulated", "sysfs"] = "simulated"
    """Battery and temperature from the kernel's sysfs (a Pi with a UPS HAT) or a simulator."""


class StatusConfig(_Section):
    """Local health reporting: the status file and the Prometheus endpoint."""

    interval_s: float = Field(5.0, gt=0, le=3600)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9108, ge=0, le=65535)
    """Prometheus endpoint port on ``metrics_host``; 0 turns it off."""


class EvidenceConfig(_Section):
    """Recording footage and the evidence ledger (``docs/evidence.md``)."""

    enabled: bool = True
    path: Path | None = None
    """Sealed segments; default ``{state_dir}/evidence``."""
    segment_s: float = Field(10.0, ge=1, le=600)
    """Length of one MP4 segment (each gets its own ledger entry)."""
    pre_event_s: float = Field(30.0, ge=0, le=300)
    """Encoded footage kept while not recording and saved when recording starts."""
    post_event_s: float = Field(30.0, ge=0, le=3600)
    """A recording started by a hit stops this long after the last hit."""
    record_on_hit: bool = True
    gop_s: float = Field(1.0, gt=0, le=10)
    """One keyframe per this many seconds: the granularity of the pre-event ring."""
    crf: int = Field(26, ge=0, le=51)
    preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast"] = "ultrafast"
    chunk_kib: int = Field(64, ge=4, le=4096)
    """Encryption chunk: at most this much footage is lost at a power cut."""
    max_mb: int = Field(0, ge=0, le=10_000_000)
    """Size limit of the evidence directory; 0: only the disk's free space counts."""
    min_free_mb: int = Field(200, ge=0, le=1_000_000)
    """Recording stops (officer alerted) before the disk has less than this free."""
    queue_size: int = Field(64, ge=1, le=1024)
    """Frames held between capture and the encoder; the oldest is dropped when full."""
    officer: str = Field("", max_length=64)
    """Badge number of the officer wearing the camera, written into each ledger entry."""
    button: Literal["none", "simulated", "gpio"] = "simulated"
    button_gpio: int = Field(22, ge=0, le=40)
    hq_dir: Path = Path("/var/lib/raqib-hq")
    """HQ evidence store root for ``raqib upload``: footage goes to ``{hq_dir}/evidence``."""
    delete_after_upload: bool = True
    """Delete a local segment once HQ confirmed its hash (else retention deletes it when full)."""
    store: Literal["dir", "s3"] = "dir"
    """HQ footage store: ``{hq_dir}/evidence`` or an S3-compatible object store (``s3_*``)."""
    s3_endpoint: str = ""
    """E.g. ``https://minio.hq.example:9000`` (path-style addressing); empty: AWS S3."""
    s3_region: str = "us-east-1"
    s3_bucket: str = Field("", pattern=r"^([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])?$")
    s3_prefix: str = Field("", max_length=512)
    """Object keys are ``{s3_prefix}{device}/{segment file}``."""
    s3_credentials: Path | None = None
    """File with ``aws_access_key_id = ...`` and ``aws_secret_access_key = ...`` lines; a
    relative name is a systemd credential in ``$CREDENTIALS_DIRECTORY``. Unset: the
    environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``). Never in this file."""
    s3_part_mb: int = Field(16, ge=5, le=5120)
    """Larger segments go up in parts of this size (an interrupted upload resumes by part)."""
    encoder: Literal["auto", "hardware", "software"] = "auto"
    """H.264 encoder: "auto" takes the board's hardware encoder (picamera2, a Pi 4) when the
    camera is a Pi camera and the board has one, else libx264 in software (a Pi 5, x86);
    "hardware" forces picamera2's encoder; the choice is in ``raqib status``."""
    hardware_bitrate_kbps: int = Field(0, ge=0, le=50_000)
    """Bit rate of the hardware encoder; 0 lets picamera2 choose."""

    @model_validator(mode="after")
    def _s3_bucket_given(self) -> EvidenceConfig:
        if self.store == "s3" and not self.s3_bucket:
            raise ValueError("store = 's3' needs s3_bucket")
        return self


class AudioConfig(_Section):
    """Sound recorded with the footage (``docs/evidence.md``, "Sound")."""

    source: Literal["none", "alsa", "file"] = "none"
    """The microphone: ALSA (pyalsaaudio), a sound file (simulator), or none."""
    device: str = Field("default", min_length=1, max_length=128)
    """ALSA capture PCM, e.g. ``default``, ``hw:1,0``, ``plughw:CARD=Device``."""
    path: Path = DEFAULT_SAMPLES_DIR / "street_audio.m4a"
    """Sound file the simulator loops (``source = "file"``)."""
    sample_rate: Literal[16000, 22050, 24000, 32000, 44100, 48000] = 48000
    channels: int = Field(1, ge=1, le=2)
    bitrate_kbps: int = Field(64, ge=16, le=256)
    """AAC-LC bit rate."""
    pre_event: bool = False
    """Keep sound in the pre-event buffer too; off by default (picture only before the start)."""
    mute_button: Literal["none", "simulated", "gpio"] = "simulated"
    mute_button_gpio: int = Field(23, ge=0, le=40)


class LoggingConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "text"


class RaqibConfig(_Section):
    """The whole configuration; each section may be omitted to take its defaults."""

    device: DeviceConfig = DeviceConfig()
    capture: CaptureConfig = CaptureConfig()
    reader: ReaderConfig = ReaderConfig()
    tracker: TrackerConfig = TrackerConfig()
    watchlist: WatchlistConfig = WatchlistConfig()
    mqtt: MqttConfig = MqttConfig()
    alert: AlertConfig = AlertConfig()
    gnss: GnssConfig = GnssConfig()
    hq: HqConfig = HqConfig()
    console: ConsoleConfig = ConsoleConfig()
    status: StatusConfig = StatusConfig()
    board: BoardConfig = BoardConfig()
    evidence: EvidenceConfig = EvidenceConfig()
    audio: AudioConfig = AudioConfig()
    logging: LoggingConfig = LoggingConfig()


def _describe(err: ValidationError) -> str:
    lines = []
    for item in err.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"{key}: {item['msg']}")
    return "; ".join(lines)


def parse_config(data: dict[str, Any]) -> RaqibConfig:
    """Validate an already-parsed mapping; raises ConfigError naming each bad key."""
    try:
        return RaqibConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid config: {_describe(exc)}") from exc


def load_config(path: Path | None) -> RaqibConfig:
    """Read and validate a TOML config file; ``None`` gives the defaults (the demo)."""
    if path is None:
        return RaqibConfig()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    try:
        return parse_config(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def with_overrides(config: RaqibConfig, **sections: dict[str, Any]) -> RaqibConfig:
    """Return a copy with some keys of some sections replaced, re-validated."""
    data = config.model_dump()
    for name, values in sections.items():
        data[name] = {**data[name], **values}
    return parse_config(data)
