"""Sub-commands of ``python -m lmcourse``."""
