#!/usr/bin/env bash
# QQP: fairseq's RoBERTa GLUE hyperparameters and the FreeLB paper's Table 7 (README.md, section GLUE).
# Environment variables and arguments: see common.sh. Example:
#   ROBERTA_PATH=roberta.large/model.pt ADV_METHOD=freelb SEED=1 examples/roberta_glue/qqp.sh
set -euo pipefail
TASK=QQP
NUM_CLASSES=2
LR=${LR:-1e-5}
BSZ=${BSZ:-32}
TOTAL_UPDATES=${TOTAL_UPDATES:-113272}
WARMUP_UPDATES=${WARMUP_UPDATES:-28318}
TABLE7_EPS=0.45    # epsilon: --adv-max-norm
TABLE7_ALPHA=0.15  # alpha: --adv-lr
TABLE7_M=2      # m ascent steps: --adv-steps m+1 passes
TASK_FLAGS=(--report-acc-and-f1 --best-checkpoint-metric accuracy --maximize-best-checkpoint-metric)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" "$@"
