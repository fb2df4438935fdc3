"""Train the plate recogniser (small CTC CNN), quantize it to full int8 TFLite, evaluate it.

Reproducible: everything derives from ``--seed`` (synthetic data from
agent.synth.plates, weight init, shuffling). Needs the ``train`` extra
(tensorflow-cpu); the device only needs ai-edge-litert.

    python models/train_recogniser.py --out models/

writes ``recogniser.tflite`` (uint8 image in, int8 logits out, batch 1),
``recogniser.json`` (charset, input size, version, measured figures) and prints the
held-out synthetic accuracy and the int8 latency that go into the model card.
Working files go to ``<out>/.work/`` (``models/.work/`` is ignored by git).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from agent.reader.ctc import greedy_decode
from agent.reader.plate_text import canonicalize, raw_tokens
from agent.synth.plates import random_plate_text, training_crop

ROOT = Path(__file__).resolve().parent.parent

VERSION = "1.0.0"
INPUT_H, INPUT_W = 32, 128
DIGITS = "0123456789"
LATIN = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
ARABIC = "\u0623\u0628\u062f\u0647\u0648\u0637\u064a"  # alif-hamza ba dal heh waw tah yeh
CHARSET = DIGITS + LATIN + ARABIC
"""Class i+1 is CHARSET[i]; class 0 is the CTC blank."""
MAX_LABEL = 10


def make_dataset(
    n: int, seed: int
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any], list[str]]:
    """``n`` crops (uint8, N x H x W), padded labels, label lengths, canonical texts."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, INPUT_H, INPUT_W), np.uint8)
    labels = np.zeros((n, MAX_LABEL), np.int32)
    lengths = np.empty(n, np.int32)
    texts: list[str] = []
    index = {ch: i + 1 for i, ch in enumerate(CHARSET)}
    for i in range(n):
        text = random_plate_text(rng, "MA" if rng.random() < 0.55 else "FR")
        images[i] = training_crop(text, rng, INPUT_H, INPUT_W)
        tokens = raw_tokens(text)
        labels[i, : len(tokens)] = [index[ch] for ch in tokens]
        lengths[i] = len(tokens)
        texts.append(text)
    return images, labels, lengths, texts


def build_model(num_classes: int) -> Any:
    """Conv-only CTC recogniser: 32x128 gray -> 32 time steps x num_classes logits."""
    import keras
    from keras import layers

    def block(x: Any, filters: int) -> Any:
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU()(x)

    inp = keras.Input((INPUT_H, INPUT_W, 1), name="image")  # float 0..255
    x = layers.Rescaling(1.0 / 255.0)(inp)
    x = block(x, 16)
    x = layers.MaxPooling2D((2, 2))(x)  # 16 x 64
    x = block(x, 32)
    x = layers.MaxPooling2D((2, 2))(x)  # 8 x 32
    x = block(x, 64)
    x = block(x, 64)
    x = layers.MaxPooling2D((2, 1))(x)  # 4 x 32
    x = block(x, 96)
    x = layers.MaxPooling2D((2, 1))(x)  # 2 x 32
    x = layers.Conv2D(128, (2, 1), padding="valid", use_bias=False)(x)  # 1 x 32
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.Conv2D(128, (1, 5), padding="same", use_bias=False)(x)  # context along width
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.Dropout(0.1)(x)
    x = layers.Conv2D(num_classes, 1)(x)
    out = layers.Reshape((INPUT_W // 4, num_classes), name="logits")(x)
    return keras.Model(inp, out)


def train(args: argparse.Namespace, work: Path) -> Any:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(args.seed)
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    t0 = time.perf_counter()
    x, y, ylen, _ = make_dataset(args.train_size, args.seed)
    print(f"generated {len(x)} training crops in {time.perf_counter() - t0:.0f} s", flush=True)
    num_classes = len(CHARSET) + 1
    model = build_model(num_classes)
    model.summary(print_fn=lambda s, **_: print(s))
    steps_per_epoch = len(x) // args.batch
    schedule = keras.optimizers.schedules.CosineDecay(
        args.lr, decay_steps=steps_per_epoch * args.epochs, warmup_target=None
    )
    optimizer = keras.optimizers.Adam(schedule)
    time_steps = INPUT_W // 4

    def train_step(images: Any, labels: Any, lengths: Any) -> Any:
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = tf.nn.ctc_loss(
                labels=labels,
                logits=logits,
                label_length=lengths,
                logit_length=tf.fill([tf.shape(images)[0]], time_steps),
                logits_time_major=False,
                blank_index=0,
            )
            loss = tf.reduce_mean(loss)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    step = tf.function(train_step)
    rng = np.random.default_rng(args.seed + 1)
    for epoch in range(args.epochs):
        order = rng.permutation(len(x))
        t1, losses = time.perf_counter(), []
        for b in range(steps_per_epoch):
            idx = order[b * args.batch : (b + 1) * args.batch]
            images = tf.convert_to_tensor(x[idx, :, :, None].astype(np.float32))
            labels, lengths = tf.convert_to_tensor(y[idx]), tf.convert_to_tensor(ylen[idx])
            losses.append(float(step(images, labels, lengths)))
        print(
            f"epoch {epoch + 1}/{args.epochs} loss {np.mean(losses):.3f} "
            f"({time.perf_counter() - t1:.0f} s)",
            flush=True,
        )
    model.save(work / "recogniser.keras")
    return model


def convert(model: Any, out: Path, seed: int, work: Path) -> None:
    """Full int8 TFLite of the logits model: batch 1, uint8 image in, int8 logits out.

    Goes through a SavedModel of a batch-1 copy (converting a concrete function of
    a Keras 3 model leaves READ_VARIABLE ops that the calibrator cannot run).
    """
    import keras
    import tensorflow as tf

    inp = keras.Input((INPUT_H, INPUT_W, 1), batch_size=1, name="image")
    fixed = keras.Model(inp, model(inp, training=False))
    saved = work / "saved_model"
    fixed.export(str(saved), format="tf_saved_model", verbose=False)
    calib, _, _, _ = make_dataset(300, seed + 7)

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


def evaluate(tflite: Path, n: int, seed: int, threads: int) -> dict[str, float]:
    """Exact-plate accuracy of the int8 model on fresh held-out synthetic crops, and latency."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(tflite), num_threads=threads)
    interp.allocate_tensors()
    inp, outp = interp.get_input_details()[0], interp.get_output_details()[0]
    scale, zero = outp["quantization"]
    x, _, _, texts = make_dataset(n, seed)
    correct, per_fmt, times = 0, {"MA": [0, 0], "FR": [0, 0]}, []
    for img, text in zip(x, texts, strict=True):
        t0 = time.perf_counter()
        interp.set_tensor(inp["index"], img[None, :, :, None])
        interp.invoke()
        logits = (interp.get_tensor(outp["index"])[0].astype(np.float32) - zero) * scale
        times.append(time.perf_counter() - t0)
        raw, _ = greedy_decode(logits, CHARSET)
        read, _fmt = canonicalize(raw)
        ok = read == text
        correct += ok
        key = "MA" if text[0].isdigit() else "FR"
        per_fmt[key][0] += ok
        per_fmt[key][1] += 1
    return {
        "synthetic_exact_accuracy": correct / n,
        "synthetic_exact_accuracy_ma": per_fmt["MA"][0] / max(per_fmt["MA"][1], 1),
        "synthetic_exact_accuracy_fr": per_fmt["FR"][0] / max(per_fmt["FR"][1], 1),
        "held_out_samples": float(n),
        "ms_per_plate_median": float(np.median(times) * 1000),
    }


def evaluate_real_moroccan(tflite: Path, dataset: Path) -> dict[str, float]:
    """Exact-plate accuracy on the real Moroccan OCR crops (one-line, label ok, no W18)."""
    import cv2
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(tflite), num_threads=1)
    interp.allocate_tensors()
    inp, outp = interp.get_input_details()[0], interp.get_output_details()[0]
    scale, zero = outp["quantization"]
    n = correct = 0
    with (dataset / "manifest.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["label_status"] != "ok" or row["n_lines"] != "1":
                continue
            want, fmt = canonicalize(row["plate_text"])
            if fmt != "MA":
                continue
            img = cv2.imread(str(dataset / row["image"]), cv2.IMREAD_GRAYSCALE)
            if img is None:
                continue
            small = cv2.resize(img, (INPUT_W, INPUT_H), interpolation=cv2.INTER_AREA)
            interp.set_tensor(inp["index"], small[None, :, :, None])
            interp.invoke()
            logits = (interp.get_tensor(outp["index"])[0].astype(np.float32) - zero) * scale
            raw, _ = greedy_decode(logits, CHARSET)
            n += 1
            correct += canonicalize(raw)[0] == want
    return {"real_moroccan_exact_accuracy": correct / max(n, 1), "real_moroccan_samples": float(n)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "models")
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--train-size", type=int, default=32000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--eval-size", type=int, default=2000)
    parser.add_argument(
        "--real-moroccan",
        type=Path,
        default=None,
        help="folder of the moroccan-plates-ocr set, for an extra real-data figure",
    )
    parser.add_argument("--eval-only", action="store_true", help="evaluate an existing .tflite")
    parser.add_argument(
        "--convert-only",
        action="store_true",
        help="quantize the last trained Keras model in <out>/.work/ again, then evaluate",
    )
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.out / ".work"
    work.mkdir(parents=True, exist_ok=True)
    tflite = args.out / "recogniser.tflite"
    if args.convert_only:
        import keras

        convert(keras.models.load_model(work / "recogniser.keras"), tflite, args.seed, work)
    elif not args.eval_only:
        t0 = time.perf_counter()
        model = train(args, work)
        convert(model, tflite, args.seed, work)
        print(f"trained and converted in {time.perf_counter() - t0:.0f} s", flush=True)
    metrics = evaluate(tflite, args.eval_size, args.seed + 1000, threads=1)
    if args.real_moroccan is not None:
        metrics |= evaluate_real_moroccan(tflite, args.real_moroccan)
    meta = {
        "name": "raqib-recogniser",
        "version": VERSION,
        "input": {
            "height": INPUT_H,
            "width": INPUT_W,
            "channels": 1,
            "dtype": "uint8",
            "layout": "NHWC",
            "colour": "gray",
        },
        "output": {
            "time_steps": INPUT_W // 4,
            "classes": len(CHARSET) + 1,
            "dtype": "int8",
            "kind": "logits",
        },
        "charset": CHARSET,
        "blank_index": 0,
        "seed": args.seed,
        "train_size": args.train_size,
        "epochs": args.epochs,
        "metrics": {k: round(v, 4) for k, v in metrics.items()},
        "size_bytes": tflite.stat().st_size,
    }
    (args.out / "recogniser.json").write_text(
        json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    print(json.dumps(meta["metrics"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
