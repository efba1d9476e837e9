"""The DVC stage names melforge runs, in order (dvc.yaml defines them; a test keeps the two equal).
Free of imports so the config, the stage table and the registry can all share it."""

DATA_STAGES = ("scan", "ingest", "validate", "features")
TRAINING_STAGES = ("vocoder", "train", "distill", "gan")  # run in a child process that a timeout can stop
STAGE_NAMES = (*DATA_STAGES, *TRAINING_STAGES, "evaluate")
