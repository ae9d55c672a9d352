#!/usr/bin/env bash
# Regenerate the training samples and the shipped default model, reproducibly.
#
#   bash tools/make_default_model.sh
#
# About 15-50 minutes of sample generation and 10-35 of training on 2 shared CPU cores.
# Pythia samples are reproducible by seed; training is deterministic for a given seed on
# CPU with the same thread count (one: OMP_NUM_THREADS=1). Needs the 'generate' extra.
set -euo pipefail
cd "$(dirname "$0")/.."
HEPAE=${HEPAE:-.venv/bin/hepae}
PYTHON=${PYTHON:-.venv/bin/python}
SAMPLES=${SAMPLES:-samples}
BUILD=${BUILD:-build/default_model}
mkdir -p "$SAMPLES" "$BUILD"

# the small sample shipped in the package (QCD, pTHatMin 50 GeV, seed 42)
[ -f hepae_coffea/data/sample_qcd.root ] ||
    $HEPAE generate --process qcd --events 2000 --seed 42 -o hepae_coffea/data/sample_qcd.root

# training (seeds 101-106) and held-out (seeds 201-207) samples: jets from 10 GeV, |eta| < 4.5
gen() { # process events seed name [more hepae generate options]
    [ -f "$SAMPLES/$4.root" ] || $HEPAE generate --process "$1" --events "$2" --seed "$3" \
        --jet-ptmin 10 --jet-etamax 4.5 "${@:5}" -q -o "$SAMPLES/$4.root"
}
gen qcd_flat 10000 101 qcd_flat_train   # QCD, pTHatMin 15 GeV, pT-hat bias pow 5.5 (weighted)
gen zprime 4000 103 zprime_train        # Z' 2 TeV -> qq
gen ttbar 4000 102 ttbar_train
gen wjets 5000 104 wjets_train          # W+jet, pTHatMin 30 GeV, bias pow 3 (weighted)
gen zjets 5000 105 zjets_train          # Z+jet, pTHatMin 30 GeV, bias pow 3 (weighted)
# QCD pT-hat slices (unweighted): jets of 1-3 TeV, rare even in the flattened spectrum
gen qcd 2500 106 qcd_slice1000_train --pthat-min 1000
gen qcd 1500 106 qcd_slice1800_train --pthat-min 1800
gen qcd 2500 107 qcd_slice1000b_train --pthat-min 1000   # more 1-3 TeV jets: the pt
gen qcd 3000 108 qcd_slice1800b_train --pthat-min 1800   # resolution stays within 3x to 3 TeV
gen qcd_flat 3000 201 qcd_flat_test
gen zprime 1500 203 zprime_test
gen ttbar 1500 202 ttbar_test
gen wjets 1500 204 wjets_test
gen zjets 1500 205 zjets_test
gen qcd 1000 206 qcd_slice1000_test --pthat-min 1000
gen qcd 600 207 qcd_slice1800_test --pthat-min 1800

# training (streamed through a shuffle buffer): every choice is in the config file; the
# order of the inputs is part of the recipe (it decides the shuffle)
OMP_NUM_THREADS=1 $HEPAE train --config tools/default_model.yaml -q -o "$BUILD/default_model.pt" \
    "$SAMPLES/qcd_flat_train.root" "$SAMPLES/qcd_slice1000_train.root" \
    "$SAMPLES/qcd_slice1000b_train.root" "$SAMPLES/qcd_slice1800_train.root" \
    "$SAMPLES/qcd_slice1800b_train.root" "$SAMPLES/zprime_train.root" \
    "$SAMPLES/ttbar_train.root" "$SAMPLES/wjets_train.root" "$SAMPLES/zjets_train.root"
cp "$BUILD/default_model.pt" hepae_coffea/data/default_model.pt
cp "$BUILD/default_model.config.yaml" hepae_coffea/data/default_model.config.yaml

# per-pT-bin sigma68 on the held-out samples, and the model card. With PREVIOUS=path/to/the
# model this one replaces, its cost per jet is measured against it and the card shows its
# per-bin figures in brackets.
HELD_OUT=(qcd_flat="$SAMPLES/qcd_flat_test.root" zprime="$SAMPLES/zprime_test.root"
    ttbar="$SAMPLES/ttbar_test.root" wjets="$SAMPLES/wjets_test.root"
    zjets="$SAMPLES/zjets_test.root" qcd_slice1000="$SAMPLES/qcd_slice1000_test.root"
    qcd_slice1800="$SAMPLES/qcd_slice1800_test.root")
PREVIOUS=${PREVIOUS:-}
OMP_NUM_THREADS=1 $PYTHON benchmarks/quality.py --model hepae_coffea/data/default_model.pt \
    --held-out "${HELD_OUT[@]}" --bins-out benchmarks/results/quality_default.json \
    ${PREVIOUS:+--cost-against "$PREVIOUS"}
if [ -n "$PREVIOUS" ]; then
    OMP_NUM_THREADS=1 $PYTHON benchmarks/quality.py --model "$PREVIOUS" --held-out "${HELD_OUT[@]}" \
        --bins-out benchmarks/results/quality_previous_default.json
    $PYTHON tools/model_card.py hepae_coffea/data/default_model.pt \
        benchmarks/results/quality_default.json \
        benchmarks/results/quality_previous_default.json "$PREVIOUS" > hepae_coffea/data/MODEL_CARD.md
else
    $PYTHON tools/model_card.py hepae_coffea/data/default_model.pt \
        benchmarks/results/quality_default.json > hepae_coffea/data/MODEL_CARD.md
fi

# the real files of the test suite (ATLAS PHYSLITE in MeV, CMS NanoAOD and PFNano)
OMP_NUM_THREADS=1 $PYTHON benchmarks/quality.py --model hepae_coffea/data/default_model.pt \
    --held-out physlite=tests/data/PHYSLITE_example.root nano_dy=tests/data/nano_dy.root \
    pfnano=tests/data/pfnano.root --bins-out benchmarks/results/quality_real_files.json
