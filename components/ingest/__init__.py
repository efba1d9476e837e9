"""Ingestion: sources -> decoded, mono, resampled, sliced, normalised clips in shards + manifest."""
