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
set -euo pipefail
DATA=${DATA:-data/race}
SAVE_DIR=${SAVE_DIR:-checkpoints/race}
FAIRSEQ_TRAIN=${FAIRSEQ_TRAIN:-fairseq-train}
SEED=${SEED:-1}
ADV_METHOD=${ADV_METHOD:-freelb}
ADV_STEPS=${ADV_STEPS:-3}
ADV_LR=${ADV_LR:-1e-1}
ADV_INIT_MAG=${ADV_INIT_MAG:-1e-1}
ADV_MAX_NORM=${ADV_MAX_NORM:-0}

if [[ "${SMOKE:-0}" == 1 ]]; then
  LR=${LR:-1e-4}; BATCH_SIZE=${BATCH_SIZE:-4}; UPDATE_FREQ=${UPDATE_FREQ:-1}; MAX_EPOCH=${MAX_EPOCH:-1}
  MODEL_ARGS=(--arch roberta_base --encoder-layers 2 --encoder-embed-dim 32 --encoder-ffn-embed-dim 64
              --encoder-attention-heads 2 --max-positions ${MAX_POSITIONS:-128} --cpu --num-workers 0)
  LOG_INTERVAL=${LOG_INTERVAL:-1}
else
  LR=${LR:-1e-5}; BATCH_SIZE=${BATCH_SIZE:-1}; UPDATE_FREQ=${UPDATE_FREQ:-16}; MAX_EPOCH=${MAX_EPOCH:-5}
  ROBERTA=${ROBERTA:?set ROBERTA to roberta.large/model.pt}
  MODEL_ARGS=(--arch roberta_large --max-positions ${MAX_POSITIONS:-512}
              --restore-file "$ROBERTA" --reset-optimizer --reset-dataloader --reset-meters
              ${PRECISION:---fp16 --fp16-init-scale 4 --threshold-loss-scale 1 --fp16-scale-window 128})
  LOG_INTERVAL=${LOG_INTERVAL:-100}
fi

exec "$FAIRSEQ_TRAIN" "$DATA" --user-dir fairseq_freelb \
  --task multiple_choice --criterion freelb_sentence_ranking \
  "${MODEL_ARGS[@]}" \
  --dropout 0.1 --attention-dropout 0.1 --weight-decay 0.01 \
  --optimizer adam --adam-betas '(0.9, 0.98)' --adam-eps 1e-06 --clip-norm 0.0 \
  --lr-scheduler fixed --lr "$LR" \
  --batch-size "$BATCH_SIZE" --required-batch-size-multiple 1 --update-freq "$UPDATE_FREQ" --max-epoch "$MAX_EPOCH" \
  --adv-method "$ADV_METHOD" --adv-steps "$ADV_STEPS" --adv-lr "$ADV_LR" \
  --adv-init-mag "$ADV_INIT_MAG" --adv-max-norm "$ADV_MAX_NORM" \
  --best-checkpoint-metric accuracy --maximize-best-checkpoint-metric \
  --no-epoch-checkpoints --no-save-optimizer-state \
  --save-dir "$SAVE_DIR" --seed "$SEED" \
  --log-format simple --log-interval "$LOG_INTERVAL" \
  "$@"
