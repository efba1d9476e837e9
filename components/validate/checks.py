"""The names of the validation suite's checks: what ``validate.warn_only`` may list (the suite in
``suite.py`` builds exactly these; a test keeps the two equal). Kept free of Great Expectations so
the config can import it."""

CHECKS = ("row_count", "sample_rate", "duration", "finite", "peak", "rms", "unique_clip_ids", "labels",
          "quarantine_share", "quarantine_increase", "min_clips_per_class")
