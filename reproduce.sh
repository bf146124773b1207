#!/usr/bin/env bash
# Every run behind the report, in order, on CPU or CUDA (the scripts pick cuda when available).
# Resumable: a run whose result JSON exists is skipped unless FORCE=1. Usage:
#   ./reproduce.sh [all|q1|q2|q3|strong|bench|report]      (default: all)
# Logs go to results/<q>/<run>.log; each part says how long it took.
set -euo pipefail
cd "$(dirname "$0")"
[ -f .venv/bin/activate ] && . .venv/bin/activate  # the README's virtual environment, when there is one
part=${1:-all}
FORCE=${FORCE:-0}

step() {  # step RESULT_JSON LOG COMMAND...: run COMMAND unless RESULT_JSON exists
  local result=$1 log=$2; shift 2
  if [ -f "$result" ] && [ "$FORCE" != 1 ]; then
    echo "  skip: $result exists (FORCE=1 to rerun)"
    return
  fi
  echo "  run:  $* > $log"
  mkdir -p "$(dirname "$log")"
  local t0=$SECONDS
  "$@" > "$log" 2>&1 || { echo "  FAILED (see $log)"; tail -n 5 "$log"; exit 1; }
  echo "        done in $((SECONDS - t0)) s"
}

timed() {  # timed NAME FUNCTION
  echo "== $1"
  local t0=$SECONDS
  "$2"
  echo "== $1 took $((SECONDS - t0)) s"
}

q1() {
  step results/q1/hopfield.json results/q1/hopfield.log python q1_hopfield.py
}

q2() {
  for lr in 0.1 0.01 0.001; do
    step "results/q2/cnn-vanilla-lr$lr.json" "results/q2/cnn-vanilla-lr$lr.log" \
      python hw2-q2.py -no_batch_norm -learning_rate "$lr" -quiet
  done
  # the sweep reuses the three runs above: it only compares them and draws the two figures
  python hw2-q2.py -no_batch_norm -sweep 0.1 0.01 0.001 -quiet > results/q2/sweep-vanilla.log 2>&1 ||
    { echo "  FAILED (see results/q2/sweep-vanilla.log)"; tail -n 5 results/q2/sweep-vanilla.log; exit 1; }
  best=$(python -c "import json; print(json.load(open('results/q2/sweep-vanilla.json'))['best_learning_rate'])")
  echo "  best vanilla learning rate: $best"
  step "results/q2/cnn-bn-lr$best.json" "results/q2/cnn-bn-lr$best.log" \
    python hw2-q2.py -learning_rate "$best" -quiet -print_params
  # what the course skeleton's reshape of channel-last images costs (the report's data story)
  step "results/q2/cnn-vanilla-lr$best-skeleton_layout.json" "results/q2/cnn-vanilla-lr$best-skeleton_layout.log" \
    python hw2-q2.py -no_batch_norm -learning_rate "$best" -skeleton_layout -quiet
  step "results/q2/cnn-bn-lr$best-skeleton_layout.json" "results/q2/cnn-bn-lr$best-skeleton_layout.log" \
    python hw2-q2.py -learning_rate "$best" -skeleton_layout -quiet
}

q3() {
  step results/q3/no-attn-train.json results/q3/no-attn-train.log \
    python hw2-q3.py train --checkpoint_name no-attn.pt --quiet
  step results/q3/attn-train.json results/q3/attn-train.log \
    python hw2-q3.py train --use_attn --checkpoint_name attn.pt --quiet
  step results/q3/no-attn-test-greedy.json results/q3/no-attn-test-greedy.log \
    python hw2-q3.py test --checkpoint_name no-attn.pt
  step results/q3/attn-test-greedy.json results/q3/attn-test-greedy.log \
    python hw2-q3.py test --checkpoint_name attn.pt
  step results/q3/attn-test-topp0.8.json results/q3/attn-test-topp0.8.log \
    python hw2-q3.py test --checkpoint_name attn.pt --topp 0.8
  step results/q3/attn-test-beam10.json results/q3/attn-test-beam.log \
    python hw2-q3.py test --checkpoint_name attn.pt --beam_size 1 3 5 10 --plot_attn 6
  for seed in 43 44; do
    step "results/q3/attn-seed$seed-train.json" "results/q3/attn-seed$seed-train.log" \
      python hw2-q3.py train --use_attn --seed "$seed" --checkpoint_name "attn-seed$seed.pt" --quiet
    step "results/q3/attn-seed$seed-test-greedy.json" "results/q3/attn-seed$seed-test-greedy.log" \
      python hw2-q3.py test --checkpoint_name "attn-seed$seed.pt"
  done
  for seed in 43 44; do
    step "results/q3/no-attn-seed$seed-train.json" "results/q3/no-attn-seed$seed-train.log" \
      python hw2-q3.py train --seed "$seed" --checkpoint_name "no-attn-seed$seed.pt" --quiet
    step "results/q3/no-attn-seed$seed-test-greedy.json" "results/q3/no-attn-seed$seed-test-greedy.log" \
      python hw2-q3.py test --checkpoint_name "no-attn-seed$seed.pt"
  done
  python diagnostics.py lengths "no attention=results/q3/no-attn-test-greedy.json" \
    "attention=results/q3/attn-test-greedy.json" --out results/q3/cer_by_source_length > results/q3/cer_by_source_length.log
  python diagnostics.py curves "no attention=results/q3/no-attn-train.json" "attention=results/q3/attn-train.json" \
    --out results/q3/val_cer_curves
  # ablation: decoder dropout after attention instead of before it
  for seed in 42 43 44; do
    name="attn-dropout_output-seed$seed"
    step "results/q3/$name-train.json" "results/q3/$name-train.log" \
      python hw2-q3.py train --use_attn --dropout_site output --seed "$seed" --checkpoint_name "$name.pt" --quiet
    step "results/q3/$name-test-greedy.json" "results/q3/$name-test-greedy.log" \
      python hw2-q3.py test --checkpoint_name "$name.pt"
  done
}

strong() {  # beyond the assignment, round 2: steps on round 1's winner, finalists over seeds, choice on validation
  # Round 1's record (results/q3/strongest-round1*.json) was written by strongest.py at commit 2108237: to redo
  # it, run that commit's ./reproduce.sh strong in a checkout of it (git worktree add ../round1 2108237).
  step results/q3/strongest.json results/q3/strongest.log python strongest.py --seeds 42 43 44 --num_threads 2
  ck=$(python -c "import json; print(json.load(open('results/q3/strongest.json'))['seeds'][0]['checkpoint'])")
  step results/q3/strongest-spell.txt results/q3/strongest-spell.log \
    bash -c "python hw2-q3.py spell --checkpoint_name $ck 'k æ t' 'f ə n ɛ t ɪ k s' 'ɡ ɹ æ f iː m' > results/q3/strongest-spell.txt"
}

bench() {
  step results/bench/bench_q3.json results/bench/bench_q3.log python bench/bench_q3.py --checkpoint attn.pt
  step results/bench/bench_q2.json results/bench/bench_q2.log python bench/bench_q2.py
}

report() {
  python report/build.py
}

case "$part" in
  all) timed Q1 q1; timed Q2 q2; timed Q3 q3; timed strong strong; timed bench bench; timed report report ;;
  q1|q2|q3|strong|bench|report) timed "$part" "$part" ;;
  *) echo "usage: $0 [all|q1|q2|q3|strong|bench|report]" >&2; exit 2 ;;
esac
