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
set -euo pipefail
DATA=${DATA:-data/csqa}
SAVE_DIR=${SAVE_DIR:-checkpoints/csqa}
FAIRSEQ_TRAIN=${FAIRSEQ_TRAIN:-fairseq-train}
SEED=${SEED:-1}
# FreeLB (--adv-steps K = K forward/backward passes). Starting values, to be tuned per task.
ADV_METHOD=${ADV_METHOD:-freelb}
ADV_STEPS=${ADV_STEPS:-3}
ADV_LR=${ADV_LR:-1e-1}
ADV_INIT_MAG=${ADV_INIT_MAG:-1e-1}
ADV_MAX_NORM=${ADV_MAX_NORM:-0}

if [[ "${SMOKE:-0}" == 1 ]]; then
  LR=${LR:-1e-4}; BATCH_SIZE=${BATCH_SIZE:-4}; MAX_UPDATE=${MAX_UPDATE:-4}; WARMUP=${WARMUP:-1}
  MODEL_ARGS=(--arch roberta_base --encoder-layers 2 --encoder-embed-dim 32 --encoder-ffn-embed-dim 64
              --encoder-attention-heads 2 --max-positions ${MAX_POSITIONS:-128} --cpu --num-workers 0)
  LOG_INTERVAL=${LOG_INTERVAL:-1}
else
  LR=${LR:-1e-5}; BATCH_SIZE=${BATCH_SIZE:-16}; MAX_UPDATE=${MAX_UPDATE:-3000}; WARMUP=${WARMUP:-150}
  ROBERTA=${ROBERTA:?set ROBERTA to roberta.large/model.pt}
  MODEL_ARGS=(--arch roberta_large --max-positions ${MAX_POSITIONS:-512}
              --restore-file "$ROBERTA" --reset-optimizer --reset-dataloader --reset-meters
              ${PRECISION:---fp16})
  LOG_INTERVAL=${LOG_INTERVAL:-25}
fi

exec "$FAIRSEQ_TRAIN" "$DATA" --user-dir fairseq_freelb \
  --task multiple_choice --criterion freelb_sentence_ranking \
  "${MODEL_ARGS[@]}" \
  --dropout 0.1 --attention-dropout 0.1 --weight-decay 0.01 \
  --optimizer adam --adam-betas '(0.9, 0.98)' --adam-eps 1e-06 --clip-norm 0.0 \
  --lr-scheduler polynomial_decay --lr "$LR" --warmup-updates "$WARMUP" --total-num-update "$MAX_UPDATE" \
  --batch-size "$BATCH_SIZE" --max-update "$MAX_UPDATE" \
  --adv-method "$ADV_METHOD" --adv-steps "$ADV_STEPS" --adv-lr "$ADV_LR" \
  --adv-init-mag "$ADV_INIT_MAG" --adv-max-norm "$ADV_MAX_NORM" \
  --best-checkpoint-metric accuracy --maximize-best-checkpoint-metric \
  --no-epoch-checkpoints --no-last-checkpoints --no-save-optimizer-state \
  --save-dir "$SAVE_DIR" --seed "$SEED" \
  --log-format simple --log-interval "$LOG_INTERVAL" \
  "$@"
