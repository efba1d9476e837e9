"""The evaluation classifier, trained inside the pipeline on the real labelled clips.

A small 1D CNN over normalised mels with one softmax head per label column (e.g. pitch and
instrument family): its penultimate layer gives embeddings for FAD/KID, its heads give the class
probabilities for the Inception Score (the reference paper's PIS/IIS/PKID/IKID idea, with no
download). It trains on the training clips only and reports its accuracy on the evaluation set
(the features stage's split), so the clips models are judged against are unseen by it too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


def label_vocabularies(labels: dict[str, list[str]]) -> dict[str, list[str]]:
    return {name: sorted(set(values)) for name, values in labels.items()}


class MelClassifier(nn.Module):
    """(batch, *example_shape) -> embeddings (batch, dim) and logits per label head."""

    def __init__(self, in_channels: int, heads: dict[str, int], embedding_dim: int = 128, width: int = 64) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.trunk = nn.Sequential(
            nn.Conv1d(in_channels, width, 5, padding=2), nn.GroupNorm(8, width), nn.SiLU(),
            nn.Conv1d(width, width * 2, 5, stride=2, padding=2), nn.GroupNorm(8, width * 2), nn.SiLU(),
            nn.Conv1d(width * 2, width * 2, 5, stride=2, padding=2), nn.GroupNorm(8, width * 2), nn.SiLU(),
        )
        self.project = nn.Linear(width * 4, embedding_dim)  # mean and max over time, concatenated
        self.heads = nn.ModuleDict({name: nn.Linear(embedding_dim, n) for name, n in heads.items()})

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        h = self.trunk(x.reshape(x.shape[0], self.in_channels, -1))
        return F.silu(self.project(torch.cat([h.mean(-1), h.amax(-1)], dim=1)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        e = self.embed(x)
        return e, {name: head(e) for name, head in self.heads.items()}


@dataclass
class TrainedClassifier:
    model: MelClassifier
    vocabularies: dict[str, list[str]]
    holdout_accuracy: dict[str, float]
    train_examples: int
    holdout_examples: int

    @torch.no_grad()
    def outputs(self, x: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(embeddings, {label: class probabilities}) for a batch of normalised examples."""
        self.model.eval()
        embeddings, probs = [], {name: [] for name in self.vocabularies}
        for start in range(0, len(x), batch_size):
            e, logits = self.model(torch.as_tensor(np.asarray(x[start:start + batch_size]), dtype=torch.float32))
            embeddings.append(e.numpy())
            for name, value in logits.items():
                probs[name].append(torch.softmax(value, dim=1).numpy())
        return np.concatenate(embeddings), {k: np.concatenate(v) for k, v in probs.items()}


def train_classifier(examples: np.ndarray, labels: dict[str, list[str]], train_rows: np.ndarray,
                     test_rows: np.ndarray, *, steps: int, batch_size: int, lr: float, embedding_dim: int,
                     seed: int = 0) -> TrainedClassifier:
    """Train on ``train_rows``; report accuracy per label on ``test_rows`` (the evaluation set)."""
    vocab = label_vocabularies(labels)
    targets = {name: np.array([vocab[name].index(v) for v in values]) for name, values in labels.items()}
    train_idx, test_idx = np.asarray(train_rows), np.asarray(test_rows)
    if len(train_idx) == 0 or len(test_idx) == 0:
        raise ValueError(f"the evaluation classifier needs training and evaluation clips, got {len(train_idx)} "
                         f"and {len(test_idx)}; see eval.fraction")
    torch.manual_seed(seed)
    in_channels = int(np.prod(examples.shape[1:-1]))
    model = MelClassifier(in_channels, {k: len(v) for k, v in vocab.items()}, embedding_dim)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    rng = np.random.default_rng(seed)
    x_all = torch.as_tensor(np.asarray(examples), dtype=torch.float32)
    y_all = {k: torch.as_tensor(v) for k, v in targets.items()}
    model.train()
    for _ in range(steps):
        rows = torch.as_tensor(rng.choice(train_idx, size=min(batch_size, len(train_idx)), replace=False))
        _, logits = model(x_all[rows])
        loss = sum(F.cross_entropy(logits[k], y_all[k][rows]) for k in logits)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    trained = TrainedClassifier(model=model, vocabularies=vocab, holdout_accuracy={}, train_examples=len(train_idx),
                                holdout_examples=len(test_idx))
    _, probs = trained.outputs(x_all[test_idx].numpy())
    trained.holdout_accuracy = {k: float((probs[k].argmax(1) == targets[k][test_idx]).mean()) for k in vocab}
    return trained
