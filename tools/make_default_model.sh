#!/usr/bin/env bash
# Regenerate the shipped sample and the shipped default model, reproducibly.
#
#   bash tools/make_default_model.sh            (about 10 minutes on 2 CPU cores)
#
# Pythia samples are reproducible by seed; training is deterministic for a given seed on
# CPU with the same thread count (2 here). Needs the 'generate' extra.
set -euo pipefail
cd "$(dirname "$0")/.."
HEPAE=${HEPAE:-.venv/bin/hepae}
PYTHON=${PYTHON:-.venv/bin/python}
SAMPLES=${SAMPLES:-samples}
BUILD=${BUILD:-build/default_model}
mkdir -p "$SAMPLES" "$BUILD"

# the small sample shipped in the package (QCD, pTHatMin 50 GeV, seed 42)
$HEPAE generate --process qcd --events 2000 --seed 42 --overwrite -o hepae_coffea/data/sample_qcd.root
# training (seed 1) and held-out test (seed 2) samples
[ -f "$SAMPLES/qcd_train.root" ] || $HEPAE generate --process qcd --events 62000 --seed 1 -o "$SAMPLES/qcd_train.root"
[ -f "$SAMPLES/qcd_test.root" ] || $HEPAE generate --process qcd --events 23000 --seed 2 -o "$SAMPLES/qcd_test.root"

# training: every choice is in the config file
$HEPAE train --config tools/default_model.yaml "$SAMPLES/qcd_train.root" -o "$BUILD/default_model.pt"
cp "$BUILD/default_model.pt" hepae_coffea/data/default_model.pt
cp "$BUILD/default_model.config.yaml" hepae_coffea/data/default_model.config.yaml
# model card with held-out metrics
$PYTHON tools/model_card.py hepae_coffea/data/default_model.pt "$SAMPLES/qcd_test.root" \
    > hepae_coffea/data/MODEL_CARD.md
