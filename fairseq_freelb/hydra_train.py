"""``fairseq-freelb-hydra-train``: fairseq's hydra entry point with the plugin registered first.

``fairseq-hydra-train`` fills each config group's defaults from fairseq's
registries *before* it imports ``common.user_dir``, so a plugin criterion's
fields (``criterion.adv_steps``, ...) are unknown at that point and the
config fails to compose. Importing the plugin first registers them; the rest
is fairseq's own ``fairseq_cli.hydra_train``.

One thing is added: fairseq's own configs (e.g.
``examples/roberta/config/finetuning/rte.yaml``) set ``criterion:`` as a
plain node (``_name: sentence_prediction``) in struct mode, so hydra refuses
``criterion.adv_steps=3`` (``Key 'adv_steps' is not in struct``) and wants
``+criterion.adv_steps=3``, while a config whose node already has the key
refuses the ``+``. :func:`force_plugin_overrides` rewrites an override of a
field of the plugin's criteria, ``criterion.<field>=value``, to hydra's
``++criterion.<field>=value`` (set it, adding it if absent), so the same
override works with either kind of config:

    fairseq-freelb-hydra-train --config-dir examples/roberta/config/finetuning --config-name rte \\
        task.data=RTE-bin checkpoint.restore_file=roberta.large/model.pt \\
        criterion._name=freelb_sentence_prediction criterion.adv_steps=3 criterion.adv_lr=0.03
"""

import dataclasses
import re
import sys
from typing import Iterable, List, Sequence, Set

# Importing this module imports the package first, which registers the plugin's criteria in this registry.
from fairseq.criterions import CRITERION_DATACLASS_REGISTRY
from fairseq_cli.hydra_train import cli_main as fairseq_hydra_main

from fairseq_freelb.adapters import runtime

_OVERRIDE = re.compile(r"^criterion\.(\w+)=")


def plugin_criterion_fields() -> Set[str]:
    """The config fields of every registered ``freelb_*`` criterion (``adv_steps``, ``adv_lr``, ...)."""
    return {f.name for name, config in CRITERION_DATACLASS_REGISTRY.items() if name.startswith("freelb_")
            for f in dataclasses.fields(config) if not f.name.startswith("_")}


def force_plugin_overrides(argv: Sequence[str], fields: Iterable[str]) -> List[str]:
    """``criterion.<field>=v`` -> ``++criterion.<field>=v`` for the plugin's ``fields``; everything else unchanged.

    Overrides that already carry ``+``, ``++`` or ``~`` are left as written.
    """
    fields = set(fields)
    out = []
    for arg in argv:
        match = _OVERRIDE.match(arg)
        out.append("++" + arg if match and match.group(1) in fields else arg)
    return out


def cli_main() -> None:
    runtime.install()
    sys.argv[1:] = force_plugin_overrides(sys.argv[1:], plugin_criterion_fields())
    fairseq_hydra_main()


if __name__ == "__main__":
    cli_main()
