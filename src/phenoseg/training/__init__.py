"""Training: the generic loop (:mod:`.loop`), checkpoints, growing a network, and one package per objective
(:mod:`.instanseg`)."""
