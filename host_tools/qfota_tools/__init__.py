"""qfota host tools: the ``qfota`` command, the EC200 simulator and board helpers (CPython)."""
