"""The training machinery on CPU: it learns, it resumes exactly, and the stages write usable models."""

from pathlib import Path

import pytest
import torch

from components.models.io import load_denoiser
from components.models.unet import UNet1d, UNetSpec, parameter_count
from components.train.loop import Draws, LoopSettings, lr_factor, step_generator, train_loop
from components.train.objectives import teacher_v_objective

SPEC = UNetSpec(example_shape=(8, 16), base_channels=16, channel_mults=(1, 2), attention_levels=(1,),
                attention_heads=2, groups=4)


def _batch() -> torch.Tensor:
    return torch.rand((4, 8, 16), generator=torch.Generator().manual_seed(3)) * 2 - 1


def test_unet_keeps_shapes_for_flat_and_snake_layouts():
    for shape in [(8, 16), (3, 8, 16)]:
        net = UNet1d(UNetSpec(example_shape=shape, base_channels=24, channel_mults=(1, 2), attention_levels=(1,),
                              attention_heads=2, groups=4))
        z = torch.randn(2, *shape)
        assert net(z, torch.rand(2)).shape == z.shape
        assert parameter_count(net) > 1000
    with pytest.raises(ValueError, match="divisible"):
        UNet1d(UNetSpec(example_shape=(8, 15), channel_mults=(1, 2)))


def test_lr_warms_up_then_decays_by_cosine():
    f = [lr_factor(s, steps=100, warmup=10, min_ratio=0.1) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[10] == pytest.approx(1.0) and f[-1] == pytest.approx(0.1, abs=1e-3)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))


def test_a_tiny_model_overfits_one_fixed_batch(tmp_path):
    torch.manual_seed(0)
    model = UNet1d(SPEC)
    objective = teacher_v_objective("snr+1")
    fixed = lambda m, x, _d: objective(m, x, Draws(torch.Generator().manual_seed(0)))  # noqa: E731 - same t, eps each step
    batch = _batch()
    settings = LoopSettings(steps=150, lr=3e-3, warmup_steps=5, ema_decay=0.0, log_every=1, grad_clip=10.0)
    history = train_loop(model, fixed, lambda step: batch, settings, tmp_path)["history"]
    first, last = history[0]["loss"], min(h["loss"] for h in history[-10:])
    assert last < first / 10, (first, last)


def test_ddp_ranks_draw_their_rows_of_what_one_process_draws():
    """Each of W ranks holds rows rank::W of the global batch; its draws must be those rows of the
    one-process draw, so W ranks train exactly the one-process run and no two ranks draw alike."""
    one = Draws(step_generator(7, 3))
    whole = (one.rand(6), one.randn((6, 2, 3)), one.randint(1, 9, 6))
    ranks = [Draws(step_generator(7, 3), rank, 2) for rank in (0, 1)]
    parts = [(d.rand(3), d.randn((3, 2, 3)), d.randint(1, 9, 3)) for d in ranks]
    for k, values in enumerate(whole):
        assert torch.equal(values[0::2], parts[0][k]) and torch.equal(values[1::2], parts[1][k])
        assert not torch.equal(parts[0][k], parts[1][k])
    assert one.generator is one.stream
    with pytest.raises(RuntimeError, match="every DDP rank shares"):
        ranks[1].generator


def test_the_loop_hands_each_step_its_own_stream(tmp_path):
    seen = []

    def recording(model, batch, draws):
        seen.append(draws.randn((4,)))
        return model(batch, torch.full((batch.shape[0],), 0.5)).pow(2).mean()

    settings = LoopSettings(steps=2, lr=1e-3, ema_decay=0.0, log_every=1, checkpoint_every=0)
    train_loop(UNet1d(SPEC), recording, lambda step: _batch(), settings, tmp_path, resume=False)
    assert [torch.equal(x, torch.randn(4, generator=step_generator(settings.seed, i))) for i, x in enumerate(seen)] == [True] * 2


def test_stopping_and_resuming_gives_the_same_weights_as_training_straight(tmp_path):
    batch_at = lambda step: torch.rand((4, 8, 16), generator=torch.Generator().manual_seed(step)) * 2 - 1  # noqa: E731
    settings = LoopSettings(steps=8, lr=1e-3, warmup_steps=2, min_lr_ratio=0.1, ema_decay=0.9, log_every=1,
                            checkpoint_every=4, seed=7, fingerprint="same")

    def fresh() -> UNet1d:
        torch.manual_seed(0)
        return UNet1d(SPEC)

    straight = train_loop(fresh(), teacher_v_objective("snr_trunc"), batch_at, settings, tmp_path / "a")
    train_loop(fresh(), teacher_v_objective("snr_trunc"), batch_at, settings, tmp_path / "b", stop_after=4)
    resumed = train_loop(fresh(), teacher_v_objective("snr_trunc"), batch_at, settings, tmp_path / "b")
    assert resumed["summary"]["resumed_from_step"] == 4
    for key, value in straight["model"].state_dict().items():
        assert torch.equal(value, resumed["model"].state_dict()[key]), key
    for key, value in straight["ema"].state_dict().items():
        assert torch.equal(value, resumed["ema"].state_dict()[key]), key
    assert [h["step"] for h in resumed["history"]] == list(range(1, 9))  # one clean curve


def test_a_checkpoint_from_another_config_is_not_resumed(tmp_path):
    batch = _batch()
    base = dict(steps=4, lr=1e-3, log_every=1, checkpoint_every=2)
    train_loop(UNet1d(SPEC), teacher_v_objective("snr+1"), lambda s: batch, LoopSettings(**base, fingerprint="a"),
               tmp_path, stop_after=2)
    other = train_loop(UNet1d(SPEC), teacher_v_objective("snr+1"), lambda s: batch,
                       LoopSettings(**base, fingerprint="b"), tmp_path)
    assert other["summary"]["resumed_from_step"] == 0


@pytest.mark.gpu
def test_bf16_training_step_on_gpu(tmp_path):
    batch = _batch()
    settings = LoopSettings(steps=3, lr=1e-3, log_every=1, device="cuda", bf16=True)
    result = train_loop(UNet1d(SPEC), teacher_v_objective("snr_trunc"), lambda s: batch, settings, tmp_path)
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in result["history"])


def test_cpu_bf16_autocast_runs_the_network_in_bf16_only_when_asked(tmp_path):
    seen = []

    def probe(net, batch, generator):
        out = net(batch, torch.full((batch.shape[0],), 0.5))
        seen.append(out.dtype)
        return out.float().pow(2).mean()

    for bf16 in (False, True):
        settings = LoopSettings(steps=1, lr=1e-3, log_every=1, device="cpu", bf16=bf16, fingerprint=str(bf16))
        train_loop(UNet1d(SPEC), probe, lambda s: _batch(), settings, tmp_path / str(bf16))
    assert seen == [torch.float32, torch.bfloat16]


def test_cpu_bf16_is_used_only_where_the_cpu_has_native_bf16(monkeypatch):
    from components.train import runner
    assert runner.bf16_autocast("cuda:0", gpu=True, cpu=False) and not runner.bf16_autocast("cuda:0", gpu=False, cpu=True)
    assert not runner.bf16_autocast("cpu", gpu=True, cpu=False)  # train.bf16 is the GPU's setting
    monkeypatch.setattr(runner, "cpu_has_native_bf16", lambda: False)
    assert not runner.bf16_autocast("cpu", gpu=True, cpu=True)  # emulated bf16 would be slower: ignored
    monkeypatch.setattr(runner, "cpu_has_native_bf16", lambda: True)
    assert runner.bf16_autocast("cpu", gpu=False, cpu=True)


def test_teacher_and_distillation_stages_write_loadable_models(tmp_path):
    from components.distill.stage import run_distill
    from components.features.stage import run_features
    from components.ingest.stage import run_ingest
    from components.settings import ProjectPaths
    from components.train.teacher import run_train
    from helpers import tiny_config

    paths = ProjectPaths(root=tmp_path)
    cfg = tiny_config(distill={"teacher_sampler": "dpm++2m", "checkpoint_every": 2})
    run_ingest(cfg, paths.clips)
    run_features(cfg, paths.clips, paths.mels)
    teacher = run_train(cfg, paths)
    assert teacher["sampling_steps"] == 4 and teacher["samples_finite"] and teacher["sampler"] == "dpm++2m"
    assert teacher["loss_weighting"] == "min_snr_5"  # the schema default reaches the objective
    assert load_denoiser(tmp_path / "models" / "teacher" / "model.pt")[1]["sampler"] == "dpm++2m"
    assert (tmp_path / "models" / "teacher" / "samples" / "final.png").is_file()
    assert list(cfg.distill.stages) == ["student-2", "student-1"]
    for name, entry in cfg.distill.stages.items():
        summary = run_distill(cfg, paths, name)
        model, meta = load_denoiser(tmp_path / "models" / name / "model.pt")
        assert meta["sampling_steps"] == entry["steps"] == summary["network_evaluations"]
        assert meta["teacher"] == entry["teacher"] and meta["mel_stats"]["clip_sigma"] == 3.0
        assert meta["sampler"] == "ddim"  # students follow the DDIM steps they were distilled from
        assert summary["samples_finite"]
        # distillation checkpoints on its own clock (train.checkpoint_every is 6, past the stage's 4 updates)
        assert sorted(p.name for p in (Path(summary["work_dir"]) / "checkpoints").glob("step-*.pt")) == [
            "step-00000002.pt", "step-00000004.pt"]
    assert not (tmp_path / "models" / "metrics").exists()  # the stage runner writes metrics, not the component
    with pytest.raises(KeyError, match="student-2, student-1"):
        run_distill(cfg, paths, "student-3")
    # The sampler is not part of the teacher's fingerprint: switching it resumes the finished run
    # (no training step) and rewrites the model file.
    again = run_train(tiny_config(), paths)
    assert again["resumed_from_step"] == again["steps"] == teacher["steps"] and again["sampler"] == "ddim"
    assert load_denoiser(tmp_path / "models" / "teacher" / "model.pt")[1]["sampler"] == "ddim"
    # Nor is the chain's length part of a student's: a chain that stops at 2 steps reuses the trained student-2.
    shorter = tiny_config(distill={"final_steps": 2})
    assert list(shorter.distill.stages) == ["student-2"]
    reused = run_distill(shorter, paths, "student-2")
    assert reused["resumed_from_step"] == reused["steps"] == cfg.distill.updates_per_stage
