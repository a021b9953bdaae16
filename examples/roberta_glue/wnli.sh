#!/usr/bin/env bash
# WNLI: not in fairseq's recipe table nor in the paper's Table 7. RoBERTa's WNLI result
# uses a different (SuperGLUE WSC) formulation; this trains plain sentence-pair
# classification so that a valid submission file exists. Settings: RTE's (a task of
# the same size): lr 2e-5, batch 16, 10 epochs of 635 examples = 400 updates, 6% warmup,
# RTE's adversarial settings (Table 7's, and the official RTE script's random start). Override any of them from the environment.
# Environment variables and arguments: see common.sh. Example:
#   ROBERTA_PATH=roberta.large/model.pt ADV_METHOD=freelb SEED=1 examples/roberta_glue/wnli.sh
set -euo pipefail
TASK=WNLI
NUM_CLASSES=2
LR=${LR:-2e-5}
BSZ=${BSZ:-16}
TOTAL_UPDATES=${TOTAL_UPDATES:-400}
WARMUP_UPDATES=${WARMUP_UPDATES:-24}
TABLE7_EPS=0.15    # epsilon: --adv-max-norm
TABLE7_ALPHA=0.03  # alpha: --adv-lr
TABLE7_M=3      # m ascent steps: --adv-steps m+1 passes
OFFICIAL_INIT_MAG=0.16  # RTE's official rand-init-mag: --adv-init-mag
TASK_FLAGS=(--best-checkpoint-metric accuracy --maximize-best-checkpoint-metric)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" "$@"
