#!/usr/bin/env bash
# FreeLB multi-task fine-tuning on ARC-Easy + ARC-Challenge + OpenBookQA, starting from the RACE model
# (the paper's Table 3 ARC setting).
#
#   DATA=data/arc-mtl RESTORE=checkpoints/race/checkpoint_best.pt examples/arc/train_arc.sh [more flags]
#   SMOKE=1 DATA=data/arc-mtl RESTORE=... examples/arc/train_arc.sh   # tiny model, CPU
#
# RESTORE is the RACE checkpoint of examples/arc/train_race.sh (or
# roberta.large/model.pt to skip the RACE step). Defaults (our choice; no
# fairseq recipe exists for ARC): lr 1e-5 with polynomial decay over
# TOTAL_UPDATES=5200 (about 10 epochs of the 8.3k-question ARC+OBQA set at
# batch 16) and 6% warmup, Adam (0.9, 0.98) eps 1e-6, dropout 0.1, weight
# decay 0.01, fp16. Every value is an environment variable; command-line flags
# come last and override anything here.
source "$(dirname "${BASH_SOURCE[0]}")/../multiple_choice_common.sh"
DATA=${DATA:-data/arc-mtl}
SAVE_DIR=${SAVE_DIR:-checkpoints/arc-mtl}

if [[ -n "${RESTORE:-}" ]]; then
  RESTORE_ARGS=(--restore-file "$RESTORE" --reset-optimizer --reset-dataloader --reset-meters --reset-lr-scheduler)
fi
if [[ "${SMOKE:-0}" == 1 ]]; then
  LR=${LR:-1e-4}; BATCH_SIZE=${BATCH_SIZE:-4}; TOTAL_UPDATES=${TOTAL_UPDATES:-6}; WARMUP=${WARMUP:-1}
  smoke_model
else
  LR=${LR:-1e-5}; BATCH_SIZE=${BATCH_SIZE:-16}; TOTAL_UPDATES=${TOTAL_UPDATES:-5200}; WARMUP=${WARMUP:-312}
  [[ ${#RESTORE_ARGS[@]} -gt 0 ]] || { echo "set RESTORE to the RACE checkpoint (or roberta.large/model.pt)" >&2; exit 1; }
  MODEL_ARGS=(--arch roberta_large --max-positions "$MAX_POSITIONS" ${PRECISION:---fp16})
  LOG_INTERVAL=${LOG_INTERVAL:-50}
fi
SCHEDULE=(--lr-scheduler polynomial_decay --lr "$LR" --warmup-updates "$WARMUP" --total-num-update "$TOTAL_UPDATES"
          --batch-size "$BATCH_SIZE" --max-update "$TOTAL_UPDATES")
mc_train "$@"
