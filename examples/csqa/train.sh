#!/usr/bin/env bash
# FreeLB fine-tuning of RoBERTa-large on CommonsenseQA.
#
#   DATA=data/csqa ROBERTA=roberta.large/model.pt examples/csqa/train.sh [more fairseq-train flags]
#   SMOKE=1 DATA=data/csqa examples/csqa/train.sh        # tiny random model, CPU, a few updates
#
# fairseq's CommonsenseQA recipe (examples/roberta/commonsense_qa): lr 1e-5,
# batch size 16, 3000 updates with 150 warmup updates (polynomial decay),
# Adam (0.9, 0.98) eps 1e-6, dropout 0.1, weight decay 0.01, fp16; 5 choices
# per question (read from the data). Every value is an environment variable,
# and flags given on the command line come last, so they override anything here.
source "$(dirname "${BASH_SOURCE[0]}")/../multiple_choice_common.sh"
DATA=${DATA:-data/csqa}
SAVE_DIR=${SAVE_DIR:-checkpoints/csqa}

if [[ "${SMOKE:-0}" == 1 ]]; then
  LR=${LR:-1e-4}; BATCH_SIZE=${BATCH_SIZE:-4}; MAX_UPDATE=${MAX_UPDATE:-4}; WARMUP=${WARMUP:-1}
  smoke_model
else
  LR=${LR:-1e-5}; BATCH_SIZE=${BATCH_SIZE:-16}; MAX_UPDATE=${MAX_UPDATE:-3000}; WARMUP=${WARMUP:-150}
  ROBERTA=${ROBERTA:?set ROBERTA to roberta.large/model.pt}
  MODEL_ARGS=(--arch roberta_large --max-positions "$MAX_POSITIONS"
              --restore-file "$ROBERTA" --reset-optimizer --reset-dataloader --reset-meters
              ${PRECISION:---fp16})
  LOG_INTERVAL=${LOG_INTERVAL:-25}
fi
SCHEDULE=(--lr-scheduler polynomial_decay --lr "$LR" --warmup-updates "$WARMUP" --total-num-update "$MAX_UPDATE"
          --batch-size "$BATCH_SIZE" --required-batch-size-multiple 1 --max-update "$MAX_UPDATE" --no-last-checkpoints)
mc_train "$@"
