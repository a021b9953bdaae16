#!/usr/bin/env bash
# FreeLB fine-tuning of RoBERTa-large on RACE: the step the paper runs before ARC.
#
#   DATA=data/race ROBERTA=roberta.large/model.pt examples/arc/train_race.sh [more fairseq-train flags]
#   SMOKE=1 DATA=data/race examples/arc/train_race.sh     # tiny random model, CPU, a few updates
#
# fairseq's RACE recipe (examples/roberta/README.race.md): lr 1e-5 (fixed),
# 5 epochs, 16 questions per update (here 1 per step x --update-freq 16 on one
# GPU), max 512 positions, Adam (0.9, 0.98) eps 1e-6, dropout 0.1, weight
# decay 0.01, fp16. Every value is an environment variable; command-line
# flags come last and override anything here.
source "$(dirname "${BASH_SOURCE[0]}")/../multiple_choice_common.sh"
DATA=${DATA:-data/race}
SAVE_DIR=${SAVE_DIR:-checkpoints/race}

if [[ "${SMOKE:-0}" == 1 ]]; then
  LR=${LR:-1e-4}; BATCH_SIZE=${BATCH_SIZE:-4}; UPDATE_FREQ=${UPDATE_FREQ:-1}; MAX_EPOCH=${MAX_EPOCH:-1}
  smoke_model
else
  LR=${LR:-1e-5}; BATCH_SIZE=${BATCH_SIZE:-1}; UPDATE_FREQ=${UPDATE_FREQ:-16}; MAX_EPOCH=${MAX_EPOCH:-5}
  ROBERTA=${ROBERTA:?set ROBERTA to roberta.large/model.pt}
  MODEL_ARGS=(--arch roberta_large --max-positions "$MAX_POSITIONS"
              --restore-file "$ROBERTA" --reset-optimizer --reset-dataloader --reset-meters
              ${PRECISION:---fp16 --fp16-init-scale 4 --threshold-loss-scale 1 --fp16-scale-window 128})
  LOG_INTERVAL=${LOG_INTERVAL:-100}
fi
SCHEDULE=(--lr-scheduler fixed --lr "$LR"
          --batch-size "$BATCH_SIZE" --update-freq "$UPDATE_FREQ" --max-epoch "$MAX_EPOCH")
mc_train "$@"
