"""seq2seq-lab: attention-based sequence-to-sequence translation with Lightning and Hydra."""
