"""The operator's side of the ``champion`` alias: who holds it and since when, and moving it back.

A rollback is a decision like the gate's: made under the same lock, appended to the same history
(components/registry/history.py), and refused with a message that names what exists when it cannot
be done (an unknown version, a failed evaluation, the champion itself, no earlier champion).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException

from components.registry.history import (ROLLED_BACK, append_entry, make_entry, previous_champion, read_history,
                                         tag_version)
from components.registry.lookup import check_name, quoted
from components.registry.promotion_lock import store_file_lock

CHAMPION = "champion"


class RollbackRefused(ValueError):
    """The rollback cannot be done; the message says why and what exists."""


@dataclass(frozen=True)
class ChampionState:
    name: str
    version: str | None  # None: no champion yet
    tags: dict[str, str]
    history: list[dict[str, Any]]


def _versions(client, name: str) -> dict[str, Any]:
    return {str(v.version): v for v in client.search_model_versions(f"name = {quoted(name)}")}


def _listing(versions: dict[str, Any]) -> str:
    return ", ".join(f"v{n} ({v.tags.get('melforge.model', '?')})" for n, v in sorted(versions.items(), key=lambda kv: int(kv[0])))


def champion_state(client, name: str) -> ChampionState:
    """The champion now and the model's decision history; ModelNotFound naming the registered
    models when ``name`` is not one."""
    check_name(client, name)
    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        current = None
    return ChampionState(name, str(current.version) if current is not None else None,
                         dict(current.tags) if current is not None else {}, read_history(client, name))


def rollback(client, name: str, version: str | None, *, reason: str,
             lock: Callable[[], ContextManager[None]] | None = None) -> dict[str, Any]:
    """Move ``champion`` to ``version`` (default: the version that held it before the current one)
    and record the decision. Refused for a version that does not exist, whose evaluation failed,
    that is not a generator (a control), or that already is the champion."""
    if not reason.strip():
        raise RollbackRefused("a rollback needs a reason (--reason TEXT): it is kept in the promotion history")
    lock = lock or (lambda: store_file_lock(client.tracking_uri))
    with lock():
        state = champion_state(client, name)
        versions = _versions(client, name)
        if version is None:
            version = previous_champion(state.history, state.version)
            if version is None:
                raise RollbackRefused(f"{name}: no earlier champion in the promotion history to roll back to "
                                      f"(champion: {'v' + state.version if state.version else 'none'}); name a version: "
                                      f"{_listing(versions) or 'none registered'}")
        version = str(version).removeprefix("v")
        target = versions.get(version)
        if target is None:
            raise RollbackRefused(f"{name} has no version {version!r}; versions: {_listing(versions) or 'none'}")
        if target.tags.get("melforge.kind") == "control":
            raise RollbackRefused(f"{name}/{version} is a control of the evaluation, not a generator to serve; "
                                  f"versions: {_listing(versions)}")
        if target.tags.get("melforge.evaluation", "ok") != "ok":
            raise RollbackRefused(f"{name}/{version} ({target.tags.get('melforge.model', '?')}): its evaluation failed "
                                  f"({target.tags.get('melforge.evaluation_error', 'no metrics')}); it cannot serve")
        if version == state.version:
            raise RollbackRefused(f"{name}/{version} is already the champion")
        client.set_registered_model_alias(name, CHAMPION, version)
        run = mlflow.active_run()
        entry = make_entry(ROLLED_BACK, candidate=version, before=state.version, after=version,
                           reason=f"rolled back by hand: {reason.strip()}", run_id=run.info.run_id if run else None)
        seq = append_entry(client, name, entry)
        tag_version(client, name, version, champion=True, reason=entry["reason"], before=state.version)
        if state.version is not None:
            client.set_model_version_tag(name, state.version, "melforge.demoted",
                                         f"{entry['at']}: champion rolled back to v{version} ({reason.strip()})"[:5000])
    return {"model_name": name, "before": state.version, "after": version, "seq": seq, **entry}
