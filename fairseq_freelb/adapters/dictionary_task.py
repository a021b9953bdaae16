"""What a fairseq task with one token dictionary read from ``<data>/dict.txt`` does around it.

The task (``self.dictionary``, ``self.cfg.data``, ``self.cfg.max_positions``)
saves the dictionary's fingerprint in every checkpoint under its own
``FINGERPRINT_PREFIX`` keys, and refuses on loading a checkpoint whose
fingerprint is not the data's (:mod:`fairseq_freelb.adapters.data_record`).
"""

import os

from fairseq_freelb.adapters.data_record import check_dictionary, dictionary_fingerprint


class DictionaryTaskMixin:
    FINGERPRINT_PREFIX = ""  # "mc_", "wsc_": the keys this task's checkpoints have always used

    def state_dict(self):
        # Saved in every checkpoint, so that loading it on other data is refused (load_state_dict).
        return {**super().state_dict(), **dictionary_fingerprint(self.dictionary, self.FINGERPRINT_PREFIX)}

    def load_state_dict(self, state_dict):
        prefix = self.FINGERPRINT_PREFIX
        check_dictionary(state_dict, self.dictionary, os.path.join(self.cfg.data, "dict.txt"), prefix)
        super().load_state_dict({k: v for k, v in state_dict.items() if not k.startswith(f"{prefix}dictionary_")})

    def max_positions(self):
        return self.cfg.max_positions

    @property
    def source_dictionary(self):
        return self.dictionary

    @property
    def target_dictionary(self):
        return self.dictionary
