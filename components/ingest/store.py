"""Where clips live: the layout of ``data/clips`` (shards, manifest, quarantine, index) and how every
later stage reads it. Kept apart from the ingest stage so a reader of clips depends on this layout
only, not on how audio is decoded (DVC re-runs a stage when the code it imports changes).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from components.storage import ShardReader

MANIFEST = "manifest.parquet"
QUARANTINE = "quarantine.csv"
INDEX = "index.json"
LABEL_PREFIX = "label_"


def read_manifest(clips_dir: Path) -> pd.DataFrame:
    path = clips_dir / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no clip manifest; run the ingest stage first (melforge stage ingest)")
    return pd.read_parquet(path)


def open_clips(clips_dir: Path) -> ShardReader:
    index = json.loads((clips_dir / INDEX).read_text())
    return ShardReader(clips_dir, index["shards"])
