"""The vocabularies the schema, the stage table and the family table share: names only, free of
imports, so the configuration can check a key against them without loading a stage package.
dvc.yaml, the validation suite and the built-in datasets each have a test holding them equal."""

# the checks the validation suite builds (components/validate/suite.py): what validate.warn_only may list
CHECK_NAMES = ("row_count", "sample_rate", "duration", "finite", "peak", "rms", "unique_clip_ids", "labels",
               "quarantine_share", "quarantine_increase", "min_clips_per_class")

BUILTIN_NAMES = ("nsynth-mini", "digits")

GAN_FAMILIES = ("wavegan", "specgan")
