"""The named starting points for params.yaml, as differences from the schema's defaults (which are
the ``demo`` profile): ``melforge run --profile NAME`` writes one out. Plain data, so the schema in
``config.py`` stays the one place that says what a key means and what values it allows."""

from __future__ import annotations

from typing import Any

PROFILES: dict[str, dict[str, Any]] = {
    # the schema's defaults are the demo profile (a test keeps the two, and params.yaml, equal)
    "demo": {"profile": "demo"},
    "cpu": {
        "profile": "cpu",
        "data": {"nsynth_mini": {"programs": [0, 24, 40, 56, 73], "pitches": list(range(48, 73, 2)),
                                  "velocities": [48, 64, 80, 100, 112, 127]}},
        "mel": {"n_mels": 64, "hop_length": 500, "frames": 128, "n_fft": 1024},
        # conditioned on the split's cells with guidance 1.5, as the demo (docs/benchmarks.md, label conditioning)
        "model": {"base_channels": 96, "channel_mults": [1, 2, 2], "attention_levels": [2]},
        # bf16 on CPUs with native bf16: the end-to-end run of 2026-12-07 (teacher 1.32x the floor) trained so
        "train": {"steps": 8000, "batch_size": 32, "lr": 1.5e-3, "warmup_steps": 200, "ema_decay": 0.999,
                  "checkpoint_every": 1000, "sample_every": 4000, "sample_count": 8, "cpu_bf16": True},
        # down to 2 steps: the 1-step student (9 more minutes) was never served here; it is within 25% of the
        # best FAD but has 78% of its clips at the real level against the serving rule's 80% (2026-12-07 run)
        "distill": {"teacher_steps": 16, "final_steps": 2, "updates_per_stage": 1500, "batch_size": 16, "lr": 1e-4},
        # Griffin-Lim, and no learned vocoder trained beside it: after 6,000 steps (19 of the profile's 97
        # minutes) it had a 37% lower log-mel L1 and was 5-10x faster, yet 5.7 dB worse spectral convergence,
        # so it was never served (docs/benchmarks.md). `vocoder.steps=6000` brings the comparison back.
        "vocoder": {"kind": "griffinlim", "steps": 0},
        "eval": {"samples": 128, "bootstrap": 200, "classifier_steps": 600, "teacher_steps": [16, 8, 4],
                 "split_labels": ["pitch", "program"], "crepe_hop_seconds": 0.1},
    },
    # the family comparison of issue 14 on CPU: every family on SC09-like spoken digits (1 s clips), the
    # diffusion teacher and students beside WaveGAN and SpecGAN, each trained for up to an hour on 2 cores
    "digits": {
        "profile": "digits",
        "data": {"sources": ["builtin:digits"]},
        "audio": {"clip_seconds": 1.0},
        "mel": {"n_mels": 64, "hop_length": 128, "frames": 128, "n_fft": 1024},
        # conditioned on the split's cells with guidance 1.5, as the demo (docs/benchmarks.md, label conditioning)
        "model": {"base_channels": 96, "channel_mults": [1, 2, 2], "attention_levels": [2]},
        "train": {"steps": 8000, "batch_size": 32, "lr": 1.5e-3, "warmup_steps": 200, "ema_decay": 0.999,
                  "checkpoint_every": 1000, "sample_every": 4000, "sample_count": 8},
        "distill": {"teacher_steps": 16, "final_steps": 1, "updates_per_stage": 1500, "batch_size": 16, "lr": 1e-4},
        "vocoder": {"kind": "griffinlim", "steps": 0},
        # baselines sized to fit the profile in 2.5 h: about 13 and 17 minutes on 2 cores (WaveGAN 0.80 s, SpecGAN
        # 0.52 s per generator step with its 5 critic updates, batch 32). Their quality-against-steps curves
        # (docs/benchmarks.md) stay 4-30x outside the 3x gate at every budget up to an hour, so the ranking holds
        "gan": {"wavegan": {"steps": 1000, "dim": 8, "batch_size": 32, "checkpoint_every": 250, "sample_every": 500},
                "specgan": {"steps": 2000, "dim": 16, "batch_size": 32, "checkpoint_every": 250, "sample_every": 1000}},
        # the third family of the seeds (RAVE's recipe on the mels): 2000 + 1000 updates
        "vae": {"steps": 2000, "adversarial_steps": 1000, "batch_size": 32, "checkpoint_every": 250},
        "eval": {"samples": 128, "bootstrap": 200, "classifier_steps": 600, "teacher_steps": [16, 8, 4],
                 "crepe_hop_seconds": 0.1},
    },
    "full": {
        "profile": "full",
        "data": {"nsynth_mini": {"programs": list(range(0, 128, 4)), "pitches": list(range(36, 85, 2)),
                                  "velocities": [50, 75, 100, 127]}},
        "mel": {"n_mels": 128, "hop_length": 160, "frames": 384, "layout": "snake"},
        # the stem must be at least as wide as the snake layout's 3 x 128 = 384 input channels
        "model": {"base_channels": 384, "channel_mults": [1, 1, 1, 1], "blocks_per_level": 2, "attention_levels": [2, 3],
                  "attention_heads": 8, "groups": 32, "conditioning": "none"},
        "train": {"steps": 200000, "batch_size": 64, "lr": 1e-4, "warmup_steps": 2000, "ema_decay": 0.999,
                  "checkpoint_every": 5000, "sample_every": 10000, "compile": True},
        "distill": {"teacher_steps": 1024, "final_steps": 1, "updates_per_stage": 20000, "batch_size": 64, "lr": 5e-5},
        # Vocos' own scale, with its discriminators after a reconstruction-only warm start (not measured here:
        # no GPU; at this scale Vocos reports far better quality than Griffin-Lim)
        "vocoder": {"kind": "learned", "dim": 512, "intermediate": 1536, "layers": 8, "steps": 500000, "batch_size": 16,
                    "segment_frames": 64, "lr": 5e-4, "warmup_steps": 1000, "ema_decay": 0.999, "adversarial": True,
                    "adversarial_start": 20000, "checkpoint_every": 5000, "sample_every": 20000, "eval_clips": 64},
        # the papers' sizes (d = 64; Adam 1e-4, beta (0.5, 0.9), 5 critic updates, lambda 10). 4 s clips need
        # 16 x 4^6 = 65536 samples (WaveGAN's longer-slice variant) and 5 SpecGAN layers reach 128 x 384
        "gan": {"wavegan": {"steps": 100000, "dim": 64, "layers": 6, "batch_size": 64, "checkpoint_every": 5000,
                            "sample_every": 10000},
                "specgan": {"steps": 100000, "dim": 64, "layers": 5, "batch_size": 64, "checkpoint_every": 5000,
                            "sample_every": 10000}},
        "eval": {"samples": 1024, "bootstrap": 200, "classifier_steps": 3000, "crepe_model": "full",
                 "split_labels": ["pitch", "program"],
                 "crepe_hop_seconds": 0.05, "griffinlim_iters": 32, "teacher_steps": [1024, 256, 64, 16, 4, 1]},
    },
}
