#!/usr/bin/env bash
# Mutation testing of the physics core with cosmic-ray (pip install -e ".[test,mutation]").
#
#   tools/mutation.sh                 every module, most important first
#   tools/mutation.sh metrics binning some modules (names: tools/mutation/<name>.toml)
#   tools/mutation.sh --report        scores and survivors of the sessions run so far
#   tools/mutation.sh --retest NAME   run NAME's survivors again (after adding tests)
#
# Each module has a config in tools/mutation/ naming the fast test subset run per mutant,
# and a scope below: the physics functions that are mutated (everything else in the file
# is skipped). Sessions live in build/mutation/<name>.sqlite and resume where they stopped.
# Mutants are applied to the files in place, one at a time, and reverted after each test
# run: run nothing else from this work tree meanwhile, and check `git status` afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -x .venv/bin/python ]]; then
  export PATH="$PWD/.venv/bin:$PATH"
fi
export HYPOTHESIS_PROFILE=mutation # derandomised, no example database: same tests every run

declare -A SCOPE=(
  [metrics]="residuals sigma68 unphysical_mask residual_summary"
  [compression_processor]="_set_moments JetCompressionProcessor.process JetCompressionProcessor._fill"
  [normalize]="_wrap_angle Normalizer.inverse Normalizer.forward"
  [binning]="Log2Binning.index"
  [binning_fills]="add_counts add_per_column"
  [compress]="round_mantissa"
  [domain]="Domain.reasons Domain.counts"
  [quantize]="Grid.to_int Grid.from_int"
  [entropy]="_Coder.values _Coder.uniform _Coder._raw32 _dphi_int _mass_ref _blocks"
  [compress_blocks]="encode_block _encode_jets _encode_events _round kept_branches decode_block extra_branch"
  [normalize_fit]="choose_transforms _fit"
)
ORDER=(metrics compression_processor binning binning_fills compress normalize domain quantize
  entropy compress_blocks normalize_fit)
# Wider scopes, for a longer run (add the names above): binning Log2Binning.positive_edges;
# entropy _Coder._categorical _code_block decode_integers; normalize_fit fit_transforms
# flag_absurd; compression_processor compress_decompress_chunk.
OUT=build/mutation
mkdir -p "$OUT"

module_of() { sed -n 's/^module-path = "\(.*\)"/\1/p' "tools/mutation/$1.toml"; }

if [[ "${1:-}" == "--report" ]]; then
  shift
  names=("${@:-${ORDER[@]}}")
  for m in "${names[@]}"; do
    [[ -f "$OUT/$m.sqlite" ]] && python tools/mutation_scope.py summary "$OUT/$m.sqlite" --survivors
  done
  exit 0
fi
if [[ "${1:-}" == "--retest" ]]; then
  python tools/mutation_scope.py retest "$OUT/$2.sqlite"
  set -- "$2"
fi

names=("${@:-${ORDER[@]}}")
for m in "${names[@]}"; do
  cfg="tools/mutation/$m.toml"
  db="$OUT/$m.sqlite"
  if [[ ! -f "$db" ]]; then
    cosmic-ray init "$cfg" "$db"
    cr-filter-operators "$db" "$cfg"
    python tools/mutation_scope.py scope "$db" "$(module_of "$m")" ${SCOPE[$m]}
  fi
  nice -n 10 cosmic-ray exec "$cfg" "$db"
  python tools/mutation_scope.py summary "$db"
done
git diff --quiet -- hepae_coffea processors || {
  echo "WARNING: library files differ from the last commit after the run (an interrupted mutant?)"
  git diff --stat -- hepae_coffea processors
}
