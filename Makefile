# The two commands of the quick start are `make demo` and `make test`; each sets itself up.
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo-work

.PHONY: setup setup-train demo test lint bench models sample clean

setup:
	@scripts/setup.sh dev,hq

setup-train:
	@scripts/setup.sh dev,hq,train

demo: setup
	rm -rf $(DEMO_DIR)
	$(BIN)/raqib demo --workdir $(DEMO_DIR)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: setup
	$(BIN)/raqib bench

# Rebuilds models/{recogniser,recogniser_2,detector}.{tflite,json} from scratch, seeded
# (models/README.md, "Rebuilding", for the time it takes by CPU): the recogniser ensemble's
# two members (recipe 4.0; the second recipe 4.4, with another seed and 5 stage-1 epochs)
# train side by side with half the cores each (two one-thread TensorFlow processes on two
# cores do 11 % more steps than two two-thread ones); the detector, with all the cores,
# starts when the shorter second member ends, beside the first member's last epochs.
# The recognisers compute in bfloat16 where the CPU has it (`--precision auto`: a step
# 23 % shorter on AVX512-BF16; float32 weights and the same int8 graph either way).
# Uses DATASETS (default ../shared/datasets, beside the checkout) when present, else synthetic
# data only (the scripts say so): in a clone elsewhere, pass DATASETS=/path/to/shared/datasets.
DATASETS ?= ../shared/datasets
RECOGNISER_2_SEED := 20261128
TRAIN_THREADS ?= $(shell nproc)
HALF_THREADS = $(shell t=$$(( $(TRAIN_THREADS) / 2 )); echo $$(( t > 0 ? t : 1 )))
models: setup-train
	nice -n 5 $(BIN)/python models/train_recogniser.py --out models/ --datasets $(DATASETS) \
		--threads $(HALF_THREADS) & first=$$!; \
	{ nice -n 5 $(BIN)/python models/train_recogniser.py --out models/ --name recogniser_2 \
		--recipe 4.4 --seed $(RECOGNISER_2_SEED) --epochs 5 --datasets $(DATASETS) \
		--threads $(HALF_THREADS) && \
	  nice -n 5 $(BIN)/python models/train_detector.py --out models/ --datasets $(DATASETS) \
		--threads $(TRAIN_THREADS); } & rest=$$!; \
	wait $$first; a=$$?; wait $$rest; b=$$?; test $$a -eq 0 && test $$b -eq 0

sample: setup
	$(BIN)/python scripts/render_sample_clip.py --out samples/

clean:
	rm -rf $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
