#!/usr/bin/env bash
# MNLI: fairseq's RoBERTa GLUE hyperparameters and the FreeLB paper's Table 7 (README.md, section GLUE).
# Environment variables and arguments: see common.sh. Example:
#   ROBERTA_PATH=roberta.large/model.pt ADV_METHOD=freelb SEED=1 examples/roberta_glue/mnli.sh
set -euo pipefail
TASK=MNLI
NUM_CLASSES=3
LR=${LR:-1e-5}
BSZ=${BSZ:-32}
TOTAL_UPDATES=${TOTAL_UPDATES:-123873}
WARMUP_UPDATES=${WARMUP_UPDATES:-7432}
TABLE7_EPS=0.2    # epsilon: --adv-max-norm
TABLE7_ALPHA=0.1  # alpha: --adv-lr
TABLE7_M=2      # m ascent steps: --adv-steps m+1 passes
TASK_FLAGS=(--valid-subset valid,valid_mismatched --best-checkpoint-metric accuracy --maximize-best-checkpoint-metric)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" "$@"
