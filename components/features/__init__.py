"""Mel features: batched log-mel, per-bin statistics, snake packing, Griffin-Lim, mmap store."""
