"""``fairseq-freelb-hydra-train``: fairseq's hydra entry point with the plugin registered first.

``fairseq-hydra-train`` fills each config group's defaults from fairseq's
registries *before* it imports ``common.user_dir``, so a plugin criterion's
fields (``criterion.adv_steps``, ...) are unknown at that point and the
config fails to compose. This module is part of the package, so importing it
(the entry point does) runs ``fairseq_freelb/__init__.py`` first, which
registers the plugin's criteria, tasks and models; the rest is fairseq's own
``fairseq_cli.hydra_train``, unchanged.
"""

from fairseq_cli.hydra_train import cli_main as fairseq_hydra_main

from fairseq_freelb.adapters import runtime


def cli_main() -> None:
    runtime.install()
    fairseq_hydra_main()


if __name__ == "__main__":
    cli_main()
