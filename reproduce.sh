#!/usr/bin/env bash
# Every run behind the report, in order, on CPU or CUDA (the scripts pick cuda when available).
# Rerunnable: a finished run of the very config asked for is reused (-reuse, --reuse; strongest.py always),
# and an interrupted Q3 training continues from its last epoch (--resume); FORCE=1 runs everything again. Usage:
#   ./reproduce.sh [all|q1|q2|q3|strong|bench|report]      (default: all; DRY=1 lists the commands only)
# Logs go to runs/logs/<run>.log; each part says how long it took.
set -euo pipefail
cd "$(dirname "$0")"
[ -f .venv/bin/activate ] && . .venv/bin/activate  # the README's virtual environment, when there is one
part=${1:-all}
logs=runs/logs
mkdir -p "$logs"
reuse=1; [ "${FORCE:-0}" = 1 ] && reuse=0

run() {  # run LOG COMMAND...: COMMAND > runs/logs/LOG.log, with -reuse / --reuse --resume unless FORCE=1
  local log=$logs/$1.log; shift
  local args=("$@")
  if [ $reuse = 1 ]; then
    case "$2" in
      hw2-q2.py) args+=(-reuse) ;;
      hw2-q3.py) [ "$3" = train ] && args+=(--reuse --resume) ;;
    esac
  fi
  if [ "${DRY:-0}" = 1 ]; then printf 'dry:'; printf ' %q' "${args[@]}"; echo; return; fi  # DRY=1: list, run nothing
  echo "  run:  ${args[*]} > $log"
  local t0=$SECONDS
  "${args[@]}" > "$log" 2>&1 || { echo "  FAILED (see $log)"; tail -n 5 "$log"; exit 1; }
  echo "        done in $((SECONDS - t0)) s"
}

timed() {  # timed NAME FUNCTION
  echo "== $1"
  local t0=$SECONDS
  "$2"
  echo "== $1 took $((SECONDS - t0)) s"
}

q1() {
  run hopfield python q1_hopfield.py
}

q2() {
  run sweep-vanilla python hw2-q2.py -no_batch_norm -sweep 0.1 0.01 0.001 -quiet
  best=$(python -c "import json; print(json.load(open('results/q2/sweep-vanilla.json'))['best_learning_rate'])")
  echo "  best vanilla learning rate: $best"
  run "cnn-bn-lr$best" python hw2-q2.py -learning_rate "$best" -quiet -print_params
  # what the course skeleton's reshape of channel-last images costs (Appendix A)
  run "cnn-vanilla-lr$best-skeleton_layout" python hw2-q2.py -no_batch_norm -learning_rate "$best" -skeleton_layout -quiet
  run "cnn-bn-lr$best-skeleton_layout" python hw2-q2.py -learning_rate "$best" -skeleton_layout -quiet
}

q3() {
  run no-attn-train python hw2-q3.py train --checkpoint_name no-attn.pt --quiet
  run attn-train python hw2-q3.py train --use_attn --checkpoint_name attn.pt --quiet
  run no-attn-test python hw2-q3.py test --checkpoint_name no-attn.pt
  run attn-test python hw2-q3.py test --checkpoint_name attn.pt
  run attn-test-topp python hw2-q3.py test --checkpoint_name attn.pt --topp 0.8
  run attn-test-beam python hw2-q3.py test --checkpoint_name attn.pt --beam_size 1 3 5 10 --plot_attn 6
  run attn-spell python hw2-q3.py spell --checkpoint_name attn.pt --out results/q3/attn-spell.txt 'k æ t' 'f ə n ɛ t ɪ k s' 'ɡ ɹ æ f iː m'
  for seed in 43 44; do
    for kind in attn no-attn; do
      flag=(); [ $kind = attn ] && flag=(--use_attn)
      run "$kind-seed$seed-train" python hw2-q3.py train "${flag[@]}" --seed "$seed" --checkpoint_name "runs/$kind-seed$seed.pt" --quiet
      run "$kind-seed$seed-test" python hw2-q3.py test --checkpoint_name "runs/$kind-seed$seed.pt"
    done
  done
  # the reading of "dropout on the final outputs" we did not choose: decoder dropout after attention
  for seed in 42 43 44; do
    name="attn-dropout_output-seed$seed"
    run "$name-train" python hw2-q3.py train --use_attn --dropout_site output --seed "$seed" --checkpoint_name "runs/$name.pt" --quiet
    run "$name-test" python hw2-q3.py test --checkpoint_name "runs/$name.pt"
  done
  run cer_by_source_length python q3_compare.py lengths "no attention=results/q3/no-attn-test-greedy.json" \
    "attention=results/q3/attn-test-greedy.json" --out results/q3/cer_by_source_length
  run val_cer_curves python q3_compare.py curves "no attention=results/q3/no-attn-train.json" \
    "attention=results/q3/attn-train.json" --out results/q3/val_cer_curves
}

strong() {  # beyond the assignment: about 160 min of training on one thread, reused run by run
  run strongest python strongest.py --seeds 42 43 44
  ck=$(python -c "import json; print(json.load(open('results/q3/strongest.json'))['members'][0]['run'])")
  run strongest-spell python hw2-q3.py spell --checkpoint_name "runs/strongest/$ck.pt" --out results/q3/strongest-spell.txt 'k æ t' 'f ə n ɛ t ɪ k s' 'ɡ ɹ æ f iː m'
}

bench() {  # the opt-in length bucketing trained as the README's speed section reports it, then the benches
  for n in 4 50; do
    run "attn-bucket$n-train" python hw2-q3.py train --use_attn --bucket "$n" --checkpoint_name "runs/attn-bucket$n.pt" --quiet
  done
  for seed in 43 44; do
    name="attn-bucket50-seed$seed"
    run "$name-train" python hw2-q3.py train --use_attn --bucket 50 --seed "$seed" --checkpoint_name "runs/$name.pt" --quiet
  done
  run bench_q3 python bench/bench_q3.py --checkpoint attn.pt
  run bench_q2 python bench/bench_q2.py
  run bench_threads python bench/bench_threads.py
  run bench_profile python bench/bench_profile.py
}

report() {
  python report/build.py
}

case "$part" in
  all) timed Q1 q1; timed Q2 q2; timed Q3 q3; timed strong strong; timed bench bench; timed report report ;;
  q1|q2|q3|strong|bench|report) timed "$part" "$part" ;;
  *) echo "usage: $0 [all|q1|q2|q3|strong|bench|report]" >&2; exit 2 ;;
esac
