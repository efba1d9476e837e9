"""The VAE family: its network's shapes and formulas, its stage at tiny scale, and that it loads,
evaluates and serves through the family table like the other families."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from components.vae.model import MelVAE, VAESpec, kl_divergence, prior

from helpers import TINY_VAE


def test_the_vae_maps_mels_to_a_latent_of_halved_frames_and_back():
    spec = VAESpec(n_mels=16, frames=32, hidden=8, latent=3, levels=2)
    vae = MelVAE(spec)
    mean, logvar = vae.encode(torch.randn(2, 16, 32))
    assert mean.shape == logvar.shape == (2, 3, 8) == (2, *spec.latent_shape)
    out = vae(prior(2, spec, torch.Generator().manual_seed(0)))
    assert out.shape == (2, 16, 32) and out.abs().max() <= 1
    with pytest.raises(ValueError, match=r"mel.frames \(30\) must be divisible by 2\^vae.levels = 4"):
        MelVAE(VAESpec(n_mels=16, frames=30, levels=2))


def test_the_kl_term_is_zero_at_the_prior_and_matches_its_closed_form():
    zero = torch.zeros(2, 3, 4)
    assert float(kl_divergence(zero, zero, elements=10)) == 0.0
    mean, logvar = torch.full((1, 1, 1), 2.0), torch.full((1, 1, 1), np.log(0.5))
    expected = 0.5 * (4.0 + 0.5 - 1 - np.log(0.5))  # 1/2 (mu^2 + sigma^2 - 1 - log sigma^2)
    assert float(kl_divergence(mean, logvar, elements=2)) == pytest.approx(expected / 2)


def test_the_kl_weight_warms_up_linearly_from_zero():
    from helpers import tiny_config
    from components.vae.stage import beta_at

    v = tiny_config(vae={"beta": 0.2, "beta_warmup_steps": 4}).vae
    assert [beta_at(t, v) for t in (0, 2, 4, 9)] == pytest.approx([0.0, 0.1, 0.2, 0.2])


@pytest.fixture
def workspace(tmp_path):
    """A workspace with the tiny clips and mels, and the tiny config with the VAE on."""
    from helpers import tiny_config

    from components.features.stage import run_features
    from components.ingest.stage import run_ingest
    from components.settings import ProjectPaths

    paths = ProjectPaths(root=tmp_path)
    cfg = tiny_config(vae=TINY_VAE)
    run_ingest(cfg, paths.clips)
    run_features(cfg, paths.clips, paths.mels)
    return paths, cfg


def test_the_vae_stage_trains_both_stages_and_serves_through_the_family_table(workspace, tmp_path):
    from helpers import tiny_config

    from components.families import evaluation_plan, load_generator
    from components.stages import model_stages, run_stage
    from components.vae.generator import VAEGenerator

    paths, cfg = workspace
    summary = run_stage("vae", cfg, paths)
    assert summary["trained"] and summary["steps"] == 4 and summary["stage1_final_loss"] > 0
    assert (tmp_path / "models" / "metrics" / "vae.json").is_file()
    assert (tmp_path / "models" / "vae" / "samples" / "final.png").is_file()
    gen = load_generator(tmp_path / "models" / "vae" / "model.pt")
    assert isinstance(gen, VAEGenerator) and gen.network_evaluations() == 1 and gen.steps_for(None) == 1
    logmel, audio = gen.sample(3, seed=0)
    assert logmel.shape == (3, 32, 64) and np.isfinite(logmel).all() and np.isfinite(audio).all()
    assert np.array_equal(gen.sample(3, seed=0)[0], logmel)  # the same seed, the same clips
    with pytest.raises(ValueError, match="one decoder pass"):
        gen.sample(1, seed=0, steps=4)
    assert evaluation_plan(cfg)[-1] == {"name": "vae", "folder": "vae", "kind": "vae", "family": "vae", "steps": 1}
    assert model_stages(cfg)[-1] == "vae" and "vae" not in model_stages(tiny_config())
    # the stage-1 curve is resumed exactly: the KL warm-up's counter travels in the checkpoint
    again = run_stage("vae", cfg, paths)
    assert again["resumed_from_step"] == 4 and again["stage1_final_loss"] == summary["stage1_final_loss"]


def test_a_vae_that_is_off_records_it_and_is_not_evaluated(tmp_path):
    import json

    from helpers import tiny_config

    from components.families import evaluation_plan
    from components.settings import ProjectPaths
    from components.stages import run_stage

    cfg = tiny_config()
    assert run_stage("vae", cfg, ProjectPaths(root=tmp_path)) == {"family": "vae", "trained": False}
    assert json.loads((tmp_path / "models" / "vae" / "status.json").read_text())["trained"] is False
    assert all(entry["family"] != "vae" for entry in evaluation_plan(cfg))


def test_changing_only_stage_2_reuses_stage_1(workspace):
    from helpers import tiny_config

    from components.stages import run_stage

    paths, cfg = workspace
    first = run_stage("vae", cfg, paths)
    second = run_stage("vae", tiny_config(vae={**TINY_VAE, "adversarial_weight": 0.5}), paths)
    assert second["work_dir"] == first["work_dir"] and second["stage1_final_loss"] == first["stage1_final_loss"]
    assert second["resumed_from_step"] == 0  # stage 2 trained again, under its own fingerprint
