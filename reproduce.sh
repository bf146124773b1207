#!/usr/bin/env bash
# Every run behind the report, in order, on CPU or CUDA: the one writer of results/ (the scripts alone
# write under runs/). A step whose output exists is skipped; FORCE=1 runs it again; DRY=1 lists the
# commands. Logs go to runs/logs/<step>.log.
#   ./reproduce.sh [all|q1|q2|q3|strong|bench|report]
set -euo pipefail
cd "$(dirname "$0")"
[ -f .venv/bin/activate ] && . .venv/bin/activate  # the README's virtual environment, when there is one
logs=runs/logs
spelt=('k æ t' 'f ə n ɛ t ɪ k s' 'ɡ ɹ æ f iː m')

step() {  # step OUTPUT COMMAND...: COMMAND > runs/logs/<OUTPUT's name>.log, unless OUTPUT exists
  local out=$1 log; shift
  log=$logs/$(basename "${out%.*}").log
  if [ "${DRY:-0}" = 1 ]; then printf 'dry:'; printf ' %q' "$@"; echo; return; fi
  if [ "${FORCE:-0}" != 1 ] && [ -e "$out" ]; then echo "  skip: $out exists"; return; fi
  mkdir -p "$logs"
  echo "  run:  $* > $log"
  local t0=$SECONDS
  "$@" > "$log" 2>&1 || { echo "  FAILED (see $log)"; tail -n 5 "$log"; exit 1; }
  echo "        done in $((SECONDS - t0)) s"
}

q1() {
  step results/q1/hopfield.json python q1_hopfield.py --out_dir results/q1
  step results/q1/retrieval.json python -m beyond.retrieval --out_dir results/q1
}

q2() {
  step results/q2/sweep-vanilla.json python hw2-q2.py -no_batch_norm -sweep 0.1 0.01 0.001 -out_dir results/q2
  best=$(python -c "import json; print(json.load(open('results/q2/sweep-vanilla.json'))['best_learning_rate'])")
  step "results/q2/cnn-bn-lr$best.json" python hw2-q2.py -learning_rate "$best" -out_dir results/q2
  # the Q2.2 gain split: batch norm without global pooling, global pooling without batch norm
  step "results/q2/cnn-bn-lr$best-flatten.json" \
    python hw2-q2.py -learning_rate "$best" -global_pool off -out_dir results/q2
  step "results/q2/cnn-vanilla-lr$best-gap.json" \
    python hw2-q2.py -no_batch_norm -learning_rate "$best" -global_pool on -out_dir results/q2
  for net in -no_batch_norm ""; do  # what the course skeleton's reshape of channel-last images costs
    name=$([ -n "$net" ] && echo vanilla || echo bn)
    step "results/q2/cnn-$name-lr$best-skeleton_layout.json" \
      python hw2-q2.py $net -learning_rate "$best" -skeleton_layout -out_dir results/q2
  done
}

q3() {
  step results/q3/no-attn-train.json python hw2-q3.py train --checkpoint_name no-attn.pt --out_dir results/q3
  step results/q3/attn-train.json python hw2-q3.py train --use_attn --checkpoint_name attn.pt --out_dir results/q3
  step results/q3/no-attn-test-greedy.json python hw2-q3.py test --checkpoint_name no-attn.pt --out_dir results/q3
  step results/q3/attn-test-greedy.json python hw2-q3.py test --checkpoint_name attn.pt --out_dir results/q3
  step results/q3/attn-test-topp0.8.json \
    python hw2-q3.py test --checkpoint_name attn.pt --topp 0.8 --out_dir results/q3
  step results/q3/attn-test-beam10.json \
    python -m beyond.beam --checkpoint_name attn.pt --beam_size 1 3 5 10 --plot_attn 6 --out_dir results/q3
  step results/q3/attn-spell.txt \
    python -m beyond.spell --checkpoint_name attn.pt --out results/q3/attn-spell.txt "${spelt[@]}"
  step results/q3/attn-errors.json \
    python -m beyond.diagnostics errors results/q3/attn-test-greedy.json --out results/q3/attn-errors
  for seed in 43 44; do
    for kind in attn no-attn; do
      flag=(); [ $kind = attn ] && flag=(--use_attn)
      step "results/q3/$kind-seed$seed-train.json" python hw2-q3.py train "${flag[@]}" --seed "$seed" \
        --checkpoint_name "runs/$kind-seed$seed.pt" --out_dir results/q3
      step "results/q3/$kind-seed$seed-test-greedy.json" \
        python hw2-q3.py test --checkpoint_name "runs/$kind-seed$seed.pt" --out_dir results/q3
    done
  done
  for seed in 42 43 44; do  # the other reading of "dropout on the final outputs": after the attention
    name="attn-dropout_output-seed$seed"
    step "results/q3/$name-train.json" python -m beyond.train --use_attn --dropout_site output \
      --seed "$seed" --checkpoint_name "runs/$name.pt" --out_dir results/q3
    step "results/q3/$name-test-greedy.json" \
      python hw2-q3.py test --checkpoint_name "runs/$name.pt" --out_dir results/q3
  done
  step results/q3/cer_by_source_length.json python -m beyond.diagnostics lengths \
    "no attention=results/q3/no-attn-test-greedy.json" "attention=results/q3/attn-test-greedy.json" \
    --out results/q3/cer_by_source_length
  step results/q3/val_cer_curves.pdf python -m beyond.diagnostics curves \
    "no attention=results/q3/no-attn-train.json" "attention=results/q3/attn-train.json" \
    --out results/q3/val_cer_curves
}

strong() {  # beyond the assignment: about 160 minutes of training on one thread
  step results/q3/strongest.json python -m beyond.study --seeds 42 43 44 --out_dir results/q3
  ck=$(python -c "import json; print(json.load(open('results/q3/strongest.json'))['members'][0]['run'])")
  step results/q3/strongest-spell.txt python -m beyond.spell --checkpoint_name "runs/strongest/$ck.pt" \
    --out results/q3/strongest-spell.txt "${spelt[@]}"
  # paired differences on the same test words, from the stored predictions of q3 and the study
  step results/q3/paired.json python -m beyond.compare --out results/q3/paired.json
}

bench() {  # the opt-in length bucketing, trained as beyond/README.md reports it, then the benches
  for run in bucket4:42 bucket50:42 bucket50:43 bucket50:44; do
    n=${run%:*}; n=${n#bucket}; seed=${run#*:}
    name="attn-bucket$n$([ "$seed" = 42 ] || echo "-seed$seed")"
    step "results/q3/$name-train.json" python -m beyond.train --use_attn --bucket "$n" --seed "$seed" \
      --checkpoint_name "runs/$name.pt" --out_dir results/q3
  done
  step results/bench/bench_q3.json python -m beyond.bench_q3 --checkpoint attn.pt --out results/bench/bench_q3.json
  step results/bench/bench_q2.json python -m beyond.bench_q2 --out results/bench/bench_q2.json
}

report() {
  python report/build.py
}

case "${1:-all}" in
  all) for part in q1 q2 q3 strong bench report; do echo "== $part"; $part; done ;;
  q1|q2|q3|strong|bench|report) echo "== $1"; $1 ;;
  *) echo "usage: $0 [all|q1|q2|q3|strong|bench|report]" >&2; exit 2 ;;
esac
