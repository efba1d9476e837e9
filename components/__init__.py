"""melforge components: plain, orchestrator-free pipeline stages (no Prefect imports here; the one
exception is the CLI, `components.cli`, whose `run` and `schedule` commands start the flows:
tests/test_import_graph.py holds both rules)."""
