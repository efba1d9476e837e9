"""The only module that imports torchaudio (2.11, its last release, in maintenance mode).

Keeping every torchaudio call here means replacing it later touches one file.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torchaudio.transforms as AT


LOWPASS_FILTER_WIDTH = 16
ROLLOFF = 0.945
KAISER_BETA = 14.769656459379492


@functools.lru_cache(maxsize=8)
def _resampler(orig_sr: int, target_sr: int) -> torch.nn.Module:
    """The band-limited (sinc, Kaiser window) resampler; the module form computes its kernel once."""
    return AT.Resample(orig_sr, target_sr, lowpass_filter_width=LOWPASS_FILTER_WIDTH, rolloff=ROLLOFF,
                       resampling_method="sinc_interp_kaiser", beta=KAISER_BETA)


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Band-limited (sinc, Kaiser window) resampling of a (channels, samples) float32 array."""
    if orig_sr == target_sr:
        return audio.astype(np.float32, copy=False)
    with torch.no_grad():
        return _resampler(orig_sr, target_sr)(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))).numpy()


class StreamResampler:
    """:func:`resample` of a mono signal that arrives in blocks, with memory that does not grow with
    its length: the same samples as resampling the whole signal at once (to float rounding).

    The kernel turns every ``o`` input samples into ``n`` output samples (o/n: the rates divided by
    their gcd) and reads ``width`` samples either side. So each block of whole periods is resampled
    with a left context of whole periods and enough right context, and only its own outputs kept;
    the first block sees zeros on its left and the last on its right, as the whole-signal call does."""

    def __init__(self, orig_sr: int, target_sr: int) -> None:
        g = math.gcd(orig_sr, target_sr)
        self.orig_sr, self.target_sr = orig_sr, target_sr
        self.o, self.n = orig_sr // g, target_sr // g
        width = math.ceil(LOWPASS_FILTER_WIDTH * self.o / (min(self.o, self.n) * ROLLOFF))
        self.context = math.ceil(width / self.o) * self.o  # left context, whole periods
        self.right = self.context + self.o
        self.history = np.zeros(0, dtype=np.float32)  # [left context][input not yet resampled]
        self.left = 0  # samples of left context at the start of history
        self.consumed = 0  # input samples whose outputs were returned (a multiple of o)
        self.seen = 0

    def _run(self, window: np.ndarray) -> np.ndarray:
        return resample(window[None, :], self.orig_sr, self.target_sr)[0]

    def feed(self, samples: np.ndarray) -> np.ndarray:
        self.seen += len(samples)
        if self.orig_sr == self.target_sr:
            return samples.astype(np.float32, copy=False)
        self.history = np.concatenate([self.history, samples.astype(np.float32, copy=False)])
        block = (len(self.history) - self.left - self.right) // self.o * self.o
        if block <= 0:
            return np.zeros(0, dtype=np.float32)
        out = self._run(self.history[: self.left + block + self.right])
        kept = out[self.left // self.o * self.n: (self.left + block) // self.o * self.n]
        self.consumed += block
        keep_left = min(self.context, self.consumed)
        self.history = self.history[self.left + block - keep_left:]
        self.left = keep_left
        return kept

    def finish(self) -> np.ndarray:
        if self.orig_sr == self.target_sr or len(self.history) <= self.left:
            return np.zeros(0, dtype=np.float32)
        total = math.ceil(self.seen * self.n / self.o)  # what the whole-signal call returns
        done = self.consumed // self.o * self.n
        out = self._run(self.history)
        start = self.left // self.o * self.n
        return out[start: start + total - done]
