"""melforge components: plain, orchestrator-free pipeline stages (no Prefect imports here)."""
