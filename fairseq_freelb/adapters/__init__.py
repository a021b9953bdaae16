"""The fairseq adapters: ``--adv-*`` config, criteria, tasks, models, and the runtime hooks of the plugin's entry points."""
