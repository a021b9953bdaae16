#!/usr/bin/env bash
# Shared body of the multiple-choice scripts (csqa/*.sh, arc/*.sh): sourced, not run.
#
# MAX_POSITIONS: 512 (RoBERTa), 128 with SMOKE=1; preprocessing checks lengths and reports
# truncation at the same value training uses.
#
# The caller sets DATA and SAVE_DIR, fills SCHEDULE (its optimizer schedule flags) and
# MODEL_ARGS (via smoke_model or its own full-size flags), optionally RESTORE_ARGS, then calls
# `mc_train "$@"`. Shared environment variables:
#   SEED (1), FAIRSEQ_TRAIN (fairseq-train), LOG_INTERVAL,
#   ADV_METHOD (freelb), ADV_STEPS (3 passes), ADV_LR (0.1), ADV_INIT_MAG (0.1), ADV_MAX_NORM (0 = unbounded):
#   starting values, to be tuned per task.
# Flags given on the script's command line come last, so they override anything here.
set -euo pipefail
if [[ "${SMOKE:-0}" == 1 ]]; then MAX_POSITIONS=${MAX_POSITIONS:-128}; else MAX_POSITIONS=${MAX_POSITIONS:-512}; fi
SEED=${SEED:-1}
FAIRSEQ_TRAIN=${FAIRSEQ_TRAIN:-fairseq-train}
ADV_METHOD=${ADV_METHOD:-freelb}
ADV_STEPS=${ADV_STEPS:-3}
ADV_LR=${ADV_LR:-1e-1}
ADV_INIT_MAG=${ADV_INIT_MAG:-1e-1}
ADV_MAX_NORM=${ADV_MAX_NORM:-0}
RESTORE_ARGS=()

# SMOKE=1: a 2-layer, 32-dim RoBERTa from random init on CPU, to test the scripts end to end.
smoke_model() {
  MODEL_ARGS=(--arch roberta_base --encoder-layers 2 --encoder-embed-dim 32 --encoder-ffn-embed-dim 64
              --encoder-attention-heads 2 --max-positions "$MAX_POSITIONS" --cpu --num-workers 0)
  LOG_INTERVAL=${LOG_INTERVAL:-1}
}

mc_train() {
  local cmd=(
    "$FAIRSEQ_TRAIN" "$DATA" --user-dir fairseq_freelb
    --task multiple_choice --criterion freelb_sentence_ranking
    "${MODEL_ARGS[@]}" ${RESTORE_ARGS[@]+"${RESTORE_ARGS[@]}"}
    --dropout 0.1 --attention-dropout 0.1 --weight-decay 0.01
    --optimizer adam --adam-betas '(0.9, 0.98)' --adam-eps 1e-06 --clip-norm 0.0
    "${SCHEDULE[@]}"
    # fairseq's default multiple of 8 drops the questions of a last partial batch,
    # in training and in validation (checkpoint_best would be picked on part of dev).
    --required-batch-size-multiple 1
    --adv-method "$ADV_METHOD" --adv-steps "$ADV_STEPS" --adv-lr "$ADV_LR"
    --adv-init-mag "$ADV_INIT_MAG" --adv-max-norm "$ADV_MAX_NORM"
    --best-checkpoint-metric accuracy --maximize-best-checkpoint-metric
    --no-epoch-checkpoints --no-save-optimizer-state
    --save-dir "$SAVE_DIR" --seed "$SEED"
    --log-format simple --log-interval "$LOG_INTERVAL"
    "$@"
  )
  printf '%q ' "${cmd[@]}"
  echo
  exec "${cmd[@]}"
}
