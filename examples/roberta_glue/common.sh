#!/usr/bin/env bash
# Shared body of the per-task GLUE launch scripts (cola.sh, ..., wnli.sh): sourced, not run.
#
# The task script sets TASK, NUM_CLASSES, LR, BSZ, TOTAL_UPDATES, WARMUP_UPDATES (fairseq's
# RoBERTa GLUE recipe), TABLE7_EPS, TABLE7_ALPHA, TABLE7_M (the FreeLB paper's Table 7),
# OFFICIAL_INIT_MAG (the official FreeLB launch script's random start) and TASK_FLAGS (metric
# reporting, best-checkpoint metric); optionally TRAIN_TASK (the --task/--criterion flags; default
# sentence-pair classification) and MNLI_INIT=1 (the task may start from MNLI, INIT_FROM below);
# its header says where each number comes from. Everything below can be overridden
# from the environment; extra command-line arguments are appended last, so they override any
# flag (argparse keeps the last value), e.g. `./rte.sh --max-epoch 3`.
#
#   ROBERTA_PATH   pretrained checkpoint (roberta.large/model.pt); required unless SMOKE=1 or INIT_FROM
#   INIT_FROM      rte.sh, mrpc.sh, stsb.sh: a fine-tuned MNLI checkpoint to start from instead; its head is
#                  replaced by the task's (python -m fairseq_freelb.glue.init_from writes the head-less copy
#                  $SAVE_DIR/init_from_mnli.pt, checked and logged in one line, and the run restores it)
#   PYTHON         the interpreter of that step (default: the one beside FAIRSEQ_TRAIN, else python3)
#   ARCH           roberta_large (default) or roberta_base
#   DATA_BIN       binarized task data (default: ${GLUE_BIN:-glue-bin}/<TASK>-bin)
#   ADV_METHOD     freelb (default), pgd, freeat, yopo or none
#   ADV_STEPS      passes per minibatch (default: Table 7's m ascent steps + 1, see docs/glue.md)
#   ADV_LR, ADV_MAX_NORM, ADV_NORM_TYPE   Table 7's alpha, epsilon; l2
#   ADV_INIT_MAG   the random start's magnitude (default: the official launch script's rand-init-mag)
#   ADAM_BETAS     (default "(0.9, 0.999)", the official FreeLB launch scripts'; RoBERTa's recipe has 0.98)
#   SEED (1), NUM_GPUS (1), FP16 (1 = on), UPDATE_FREQ (1), LR, BSZ, TOTAL_UPDATES, WARMUP_UPDATES, MAX_EPOCH (10)
#   SAVE_DIR       (default: checkpoints/<TASK>/<ADV_METHOD>-seed<SEED>)
#   FAIRSEQ_TRAIN  the fairseq-train executable (default: fairseq-train on PATH)
#   USER_DIR       the plugin (default: fairseq_freelb, found from any directory once installed)
#   DRY_RUN=1      print the command and exit
#   SMOKE=1        a 2-layer, 32-dim RoBERTa from random init on CPU for SMOKE_UPDATES (3) updates:
#                  tests the script end to end without a checkpoint or a GPU
set -euo pipefail

: "${TASK:?the task script sets TASK}"
ARCH=${ARCH:-roberta_large}
DATA_BIN=${DATA_BIN:-${GLUE_BIN:-glue-bin}/${TASK}-bin}
ADV_METHOD=${ADV_METHOD:-freelb}
ADV_STEPS=${ADV_STEPS:-$((TABLE7_M + 1))}
ADV_LR=${ADV_LR:-$TABLE7_ALPHA}
ADV_MAX_NORM=${ADV_MAX_NORM:-$TABLE7_EPS}
if [ "$ADV_METHOD" = "none" ]; then ADV_INIT_MAG=${ADV_INIT_MAG:-0}; else ADV_INIT_MAG=${ADV_INIT_MAG:-$OFFICIAL_INIT_MAG}; fi
ADAM_BETAS=${ADAM_BETAS:-(0.9, 0.999)}
ADV_NORM_TYPE=${ADV_NORM_TYPE:-l2}
SEED=${SEED:-1}
NUM_GPUS=${NUM_GPUS:-1}
FP16=${FP16:-1}
UPDATE_FREQ=${UPDATE_FREQ:-1}
MAX_EPOCH=${MAX_EPOCH:-10}
SAVE_DIR=${SAVE_DIR:-checkpoints/${TASK}/${ADV_METHOD}-seed${SEED}}
FAIRSEQ_TRAIN=${FAIRSEQ_TRAIN:-fairseq-train}
USER_DIR=${USER_DIR:-fairseq_freelb}
SMOKE=${SMOKE:-0}
INIT_FROM=${INIT_FROM:-}
if [ -z "${PYTHON:-}" ]; then
    TRAIN_EXE=$(command -v "$FAIRSEQ_TRAIN" || true)
    if [ -n "$TRAIN_EXE" ] && [ -x "$(dirname "$TRAIN_EXE")/python" ]; then PYTHON=$(dirname "$TRAIN_EXE")/python; else PYTHON=python3; fi
fi
if [ -z "${TRAIN_TASK+x}" ]; then
    TRAIN_TASK=(--task sentence_prediction --criterion freelb_sentence_prediction --num-classes "$NUM_CLASSES"
                --init-token 0 --separator-token 2)
fi

if [ ! -d "$DATA_BIN" ]; then
    echo "$(basename "$0"): error: DATA_BIN=$DATA_BIN: no such folder (run python -m fairseq_freelb.glue.preprocess first)" >&2
    exit 2
fi
# Examples were cut to fit at preprocessing (longest-first, both sentences kept); refuse data cut for a
# longer model, which fairseq would otherwise skip (training) or refuse (validation) example by example.
META_MAX_POSITIONS=$(sed -n 's/.*"max_positions": *\([0-9]*\).*/\1/p' "$DATA_BIN/meta.json" 2>/dev/null || true)
if [ -z "$META_MAX_POSITIONS" ]; then
    echo "$(basename "$0"): warning: $DATA_BIN/meta.json records no max_positions (preprocessed by an older version," \
         "which did not cut long examples); re-preprocess with python -m fairseq_freelb.glue.preprocess" >&2
elif (( META_MAX_POSITIONS > 512 )); then
    echo "$(basename "$0"): error: $DATA_BIN was preprocessed for --max-positions $META_MAX_POSITIONS; the model has 512" >&2
    exit 2
fi
if (( BSZ % NUM_GPUS != 0 )); then
    echo "$(basename "$0"): error: batch size $BSZ is not divisible by NUM_GPUS=$NUM_GPUS" >&2
    exit 2
fi

if [ -n "$INIT_FROM" ]; then
    if [ "${MNLI_INIT:-0}" != "1" ]; then
        echo "$(basename "$0"): error: INIT_FROM is for rte.sh, mrpc.sh and stsb.sh (the tasks the paper starts from MNLI)" >&2
        exit 2
    fi
    if [ ! -f "$INIT_FROM" ]; then
        echo "$(basename "$0"): error: INIT_FROM=$INIT_FROM: no such file" >&2
        exit 2
    fi
fi

MODEL=(--arch "$ARCH" --max-positions 512)
RESTORE=()
INIT_CMD=()
DEVICE=(--distributed-world-size "$NUM_GPUS")
PRECISION=()
if [ "$SMOKE" = "1" ]; then
    SMOKE_UPDATES=${SMOKE_UPDATES:-3}
    # 512 positions as the real model, so that the data's preprocessing length fits (a 512 x 32 table is tiny).
    MODEL=(--arch roberta_base --encoder-layers 2 --encoder-embed-dim 32 --encoder-ffn-embed-dim 64
           --encoder-attention-heads 2 --max-positions 512)
    DEVICE=(--cpu --num-workers 0)
    BSZ=8; NUM_GPUS=1; TOTAL_UPDATES=$SMOKE_UPDATES; WARMUP_UPDATES=1; MAX_EPOCH=100; LR=1e-3
    EXTRA_SMOKE=(--max-update "$SMOKE_UPDATES" --log-interval 1)
else
    EXTRA_SMOKE=()
    if [ -z "$INIT_FROM" ]; then
        : "${ROBERTA_PATH:?set ROBERTA_PATH to the pretrained checkpoint (e.g. roberta.large/model.pt), or SMOKE=1}"
        if [ ! -f "$ROBERTA_PATH" ]; then
            echo "$(basename "$0"): error: ROBERTA_PATH=$ROBERTA_PATH: no such file" >&2
            exit 2
        fi
        RESTORE=(--restore-file "$ROBERTA_PATH" --reset-optimizer --reset-dataloader --reset-meters)
    fi
    if [ "$FP16" = "1" ]; then
        PRECISION=(--fp16 --fp16-init-scale 4 --threshold-loss-scale 1 --fp16-scale-window 128)
    fi
fi
if [ -n "$INIT_FROM" ]; then
    INIT_FILE="$SAVE_DIR/init_from_mnli.pt"
    INIT_CMD=("$PYTHON" -m fairseq_freelb.glue.init_from --checkpoint "$INIT_FROM" --task "$TASK"
              --data-bin "$DATA_BIN" --out "$INIT_FILE")
    RESTORE=(--restore-file "$INIT_FILE" --reset-optimizer --reset-dataloader --reset-meters)
fi

CMD=(
    "$FAIRSEQ_TRAIN" "$DATA_BIN"
    --user-dir "$USER_DIR"
    "${RESTORE[@]}"
    "${MODEL[@]}"
    "${TRAIN_TASK[@]}"
    # --required-batch-size-multiple 1: fairseq's default 8 drops the last partial batch of every
    # split, so validation (and checkpoint_best) would not see every dev example.
    --batch-size $((BSZ / NUM_GPUS)) --max-tokens 4400 --required-batch-size-multiple 1
    --update-freq "$UPDATE_FREQ"
    --dropout 0.1 --attention-dropout 0.1
    --weight-decay 0.1 --optimizer adam --adam-betas "$ADAM_BETAS" --adam-eps 1e-06 --clip-norm 0.0
    --lr-scheduler polynomial_decay --lr "$LR" --total-num-update "$TOTAL_UPDATES" --warmup-updates "$WARMUP_UPDATES"
    --max-epoch "$MAX_EPOCH"
    --find-unused-parameters
    --seed "$SEED"
    --save-dir "$SAVE_DIR" --no-epoch-checkpoints
    --log-format simple --log-interval 100 --no-progress-bar
    --adv-method "$ADV_METHOD" --adv-steps "$ADV_STEPS" --adv-lr "$ADV_LR"
    --adv-max-norm "$ADV_MAX_NORM" --adv-init-mag "$ADV_INIT_MAG" --adv-norm-type "$ADV_NORM_TYPE"
    "${DEVICE[@]}"
    "${PRECISION[@]}"
    "${TASK_FLAGS[@]}"
    "${EXTRA_SMOKE[@]}"
    "$@"
)

if [ ${#INIT_CMD[@]} -gt 0 ]; then
    printf '%q ' "${INIT_CMD[@]}"
    echo
fi
printf '%q ' "${CMD[@]}"
echo
if [ "${DRY_RUN:-0}" = "1" ]; then
    exit 0
fi
mkdir -p "$SAVE_DIR"
if [ ${#INIT_CMD[@]} -gt 0 ]; then
    "${INIT_CMD[@]}" || exit 2
fi
exec "${CMD[@]}"
