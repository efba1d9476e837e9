"""Prefect flows: thin orchestration wrappers around components/."""
