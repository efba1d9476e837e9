"""The vocoder: network shapes, its losses' known values, the NNLS mel inverse, the mel -> audio
interface, exact resume, and a vocoder that learns one clip better than Griffin-Lim renders it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from components.features.griffinlim import nnls_mel_inverse
from components.features.mel import LogMel, MelSpec
from components.train.loop import Draws, LoopSettings, train_loop
from components.vocoder.adversarial import (AdversarialCritic, Discriminators, discriminator_hinge, feature_matching,
                                            generator_hinge)
from components.vocoder.interface import (GriffinLim, VocoderMismatch, load_vocoder, make_vocoder,
                                          save_vocoder)
from components.vocoder.losses import multi_resolution_stft, spectral_convergence, stft_magnitude
from components.vocoder.model import Vocos, VocoderSpec, complex_spectrum
from components.vocoder.quality import comparison, score_vocoders
from components.vocoder.stage import reconstruction_objective, segment_source

SPEC = MelSpec(sample_rate=8000, n_fft=256, hop_length=64, n_mels=24)


def tiny_vocos(seed: int = 0) -> Vocos:
    torch.manual_seed(seed)
    return Vocos(VocoderSpec(n_mels=SPEC.n_mels, n_fft=SPEC.n_fft, hop_length=SPEC.hop_length, dim=32, intermediate=64,
                             layers=2))


def note(freq: float = 440.0, seconds: float = 0.5, rate: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.4 * np.sin(2 * np.pi * freq * t) * np.exp(-2 * t) + 0.2 * np.sin(2 * np.pi * 2 * freq * t)).astype(np.float32)


def test_the_vocoder_turns_f_frames_into_f_minus_one_hops_of_audio():
    model = tiny_vocos()
    out = model(torch.randn(3, SPEC.n_mels, 20))
    assert out.shape == (3, 19 * SPEC.hop_length)
    assert model.spec.samples_for(20) == 19 * SPEC.hop_length
    assert torch.isfinite(out).all()


def test_the_head_builds_exp_m_times_cos_p_plus_i_sin_p():
    m, p = torch.tensor([0.0, math.log(2.0), 100.0]), torch.tensor([0.0, math.pi / 2, 0.0])
    s = complex_spectrum(m, p)
    assert torch.allclose(s.real, torch.tensor([1.0, 0.0, math.exp(6.0)]), atol=1e-5)  # m clamped at 6
    assert torch.allclose(s.imag, torch.tensor([0.0, 2.0, 0.0]), atol=1e-5)


def test_spectral_convergence_is_the_relative_frobenius_error():
    ref = torch.tensor([[3.0, 4.0]])
    assert spectral_convergence(ref, torch.tensor([[3.0, 4.0]])).item() == 0.0
    assert spectral_convergence(ref, torch.tensor([[0.0, 0.0]])).item() == pytest.approx(1.0)
    assert spectral_convergence(ref, torch.tensor([[3.0, 3.0]])).item() == pytest.approx(0.2)


def test_the_multi_resolution_stft_distance_is_zero_only_for_the_same_audio():
    x = torch.from_numpy(note())[None]
    assert multi_resolution_stft(x, x.clone(), [(128, 32), (256, 64)]).item() == pytest.approx(0.0, abs=1e-6)
    assert multi_resolution_stft(x, 0.5 * x, [(128, 32), (256, 64)]).item() > 0.5  # |log 0.5| alone is 0.69
    mag = stft_magnitude(x, 128, 32)
    assert mag.shape == (1, 65, 1 + x.shape[1] // 32)


def test_the_nnls_inverse_fits_the_mel_better_than_the_clamped_pseudo_inverse_and_stays_non_negative():
    lm = LogMel(SPEC)
    power = lm.power(torch.from_numpy(np.stack([note(), note(220.0)])))
    fb = SPEC.filterbank()
    ours = nnls_mel_inverse(power, fb, iterations=100)
    pinv = torch.clamp(torch.linalg.pinv(fb) @ power, min=0.0)

    def misfit(x):
        return float(((fb @ x - power) ** 2).sum() / (power ** 2).sum())

    assert (ours >= 0).all()
    assert misfit(ours) < 1e-3 and misfit(ours) < 0.01 * misfit(pinv)


def test_the_nnls_inverse_reaches_librosas_objective():
    import librosa

    power = LogMel(SPEC)(note()[None]).exp()[0].numpy().astype(np.float64)
    fb = SPEC.filterbank().numpy().astype(np.float64)
    theirs = librosa.util.nnls(fb, power)
    ours = nnls_mel_inverse(torch.from_numpy(power)[None], torch.from_numpy(fb), iterations=200)[0].numpy()
    objective = lambda x: float(((fb @ x - power) ** 2).sum())  # noqa: E731
    assert objective(ours) <= objective(theirs) * 1.05 + 1e-9


def test_discriminators_score_every_member_and_the_hinge_losses_have_their_known_values():
    disc = Discriminators(periods=[2, 3], resolutions=[(128, 32)], width=4)
    out = disc(torch.randn(2, 1000))
    assert len(out) == 3 and all(score.shape[0] == 2 and feats for score, feats in out)
    ones = [(torch.ones(2, 5), [torch.ones(2, 3)])]
    minus = [(-torch.ones(2, 5), [torch.zeros(2, 3)])]
    assert discriminator_hinge(ones, minus).item() == 0.0  # both beyond the margin
    assert discriminator_hinge(minus, ones).item() == pytest.approx(4.0)  # relu(2) + relu(2)
    assert generator_hinge(minus).item() == pytest.approx(2.0)
    assert feature_matching(ones, minus).item() == pytest.approx(1.0)
    assert feature_matching(ones, ones).item() == 0.0


def _vocoder_loop(tmp_path, *, stop_after=None, adversarial=False):
    lm = LogMel(SPEC)
    audio = torch.from_numpy(np.stack([note(f) for f in (220.0, 330.0, 440.0)]))

    def batch_at(step: int) -> torch.Tensor:
        rng = np.random.default_rng([0, step])
        rows, start = rng.integers(0, 3, size=2), int(rng.integers(0, 1000))
        return audio[rows, start:start + 16 * SPEC.hop_length]

    critic = None
    if adversarial:
        critic = AdversarialCritic(Discriminators([2], [(128, 32)], 4), lr=1e-3, start=2,
                                   make_pair=lambda net, x, g: (x, net(lm.log_power(x))))
    settings = LoopSettings(steps=6, lr=2e-3, warmup_steps=1, log_every=1, checkpoint_every=3, seed=0, ema_decay=0.9,
                            fingerprint="voc")
    torch.manual_seed(0)
    return train_loop(tiny_vocos(), reconstruction_objective(lm, [(128, 32)], 1.0, critic), batch_at, settings,
                      tmp_path, stop_after=stop_after, critic=critic)


@pytest.mark.parametrize("adversarial", [False, True])
def test_vocoder_training_resumed_from_a_checkpoint_ends_with_the_same_weights(tmp_path, adversarial):
    whole = _vocoder_loop(tmp_path / "whole", adversarial=adversarial)
    _vocoder_loop(tmp_path / "split", stop_after=3, adversarial=adversarial)
    resumed = _vocoder_loop(tmp_path / "split", adversarial=adversarial)
    assert resumed["summary"]["resumed_from_step"] == 3
    for a, b in zip(whole["model"].state_dict().values(), resumed["model"].state_dict().values()):
        assert torch.equal(a, b)
    if adversarial:
        assert "critic_loss" in resumed["history"][-1]


def test_a_learned_vocoder_fits_one_clip_with_a_loss_well_below_griffin_lims():
    torch.manual_seed(0)
    clip = torch.from_numpy(note(330.0, seconds=0.5))[None]
    lm = LogMel(SPEC)
    model = Vocos(VocoderSpec(n_mels=SPEC.n_mels, n_fft=SPEC.n_fft, hop_length=SPEC.hop_length, dim=96, intermediate=288,
                              layers=4))
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, 600)
    objective = reconstruction_objective(lm, [(128, 32), (256, 64)], 1.0)
    for _ in range(600):
        loss = objective(model, clip, Draws(torch.Generator()))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
    logmel = lm(clip).numpy()
    with torch.no_grad():
        learned = model.eval()(torch.from_numpy(logmel)).numpy()
        griffin = GriffinLim(SPEC, n_iter=16)(logmel)

        def loss_of(audio: np.ndarray) -> float:  # the training loss of fixed audio against the clip
            return float(objective(lambda _: torch.from_numpy(audio), clip, Draws(torch.Generator())))

        assert loss_of(learned) < 0.6 * loss_of(griffin)


def test_a_saved_vocoder_loads_and_refuses_mels_made_with_other_settings(tmp_path):
    model = tiny_vocos()
    path = tmp_path / "vocoder.pt"
    save_vocoder(path, model, SPEC, steps=5)
    loaded = make_vocoder("learned", SPEC, griffinlim_iters=4, file=path)
    logmel = LogMel(SPEC)(note()[None]).numpy()
    with torch.no_grad():
        expected = np.clip(model.eval()(torch.from_numpy(logmel)).numpy(), -1, 1)
    np.testing.assert_allclose(loaded(logmel), expected, atol=1e-6)
    other = MelSpec(sample_rate=8000, n_fft=256, hop_length=32, n_mels=24)
    with pytest.raises(VocoderMismatch, match="hop_length: vocoder 64, the model 32"):
        make_vocoder("learned", other, griffinlim_iters=4, file=path)
    with pytest.raises(FileNotFoundError, match="run the vocoder stage"):
        load_vocoder(tmp_path / "missing.pt")
    assert isinstance(make_vocoder("griffinlim", SPEC, griffinlim_iters=4, file=path), GriffinLim)


def test_vocoders_are_scored_side_by_side_on_the_same_clips():
    audio = np.stack([note(220.0), note(440.0)])
    scores = score_vocoders({"a": GriffinLim(SPEC, n_iter=2), "b": GriffinLim(SPEC, n_iter=16)}, audio, SPEC, repeats=1)
    assert scores["b"]["sc_db"]["value"] < scores["a"]["sc_db"]["value"]  # more iterations, closer to the clip
    assert scores["a"]["sc_db"]["n"] == 2 and scores["a"]["rtf"] > 0
    versus = comparison(scores, "b", "a")
    assert versus["sc_db_gain"] > 0 and 0 < versus["logmel_l1_reduction"] < 1


def test_training_segments_are_a_pure_function_of_the_step_and_come_only_from_training_clips(tmp_path):
    from components.storage import ShardReader, ShardWriter

    writer = ShardWriter(tmp_path, prefix="clips", shard_size=2, row_shape=(4000,))
    locations = [writer.append(np.full(4000, k, np.float32)) for k in range(3)]
    clips = ShardReader(tmp_path, writer.close())
    batch_at = segment_source(clips, np.array([0, 2]), locations, batch_size=8, segment_samples=512, seed=3)
    first = batch_at(5)
    assert first.shape == (8, 512)
    assert torch.equal(first, batch_at(5)) and not torch.equal(batch_at(5), batch_at(6))
    assert set(first[:, 0].tolist()) <= {0.0, 2.0}  # clip 1 is held out


def test_the_report_table_lists_every_vocoder_and_the_learned_ones_gains_only_when_there_is_one():
    from components.evaluate.report import vocoder_section

    def row(kind, sc):
        return {"kind": kind, "rtf": 0.01, **{k: {"value": v, "low": v - 1, "high": v + 1}
                                              for k, v in (("sc_db", sc), ("logmel_l1", 0.3), ("mrstft", 2.0))}}

    only_gl = vocoder_section({"scores": {"griffinlim@16": row("griffinlim", -20.0)}, "kind": "griffinlim"})
    assert "griffinlim@16" in only_gl and "Learned" not in only_gl
    both = vocoder_section({"scores": {"learned": row("learned", -25.0), "griffinlim@16": row("griffinlim", -20.0)},
                            "kind": "learned", "learned_vs": {"griffinlim@16": {"sc_db_gain": 5.0, "logmel_l1_reduction": 0.3,
                                                                               "mrstft_reduction": 0.5, "speedup": 6.0}}})
    assert "learned ★" in both and "+5.0 dB SC" in both and "6.0x faster" in both
    assert vocoder_section({}) == ""


def test_our_griffin_lim_is_torchaudios_iteration():
    import torchaudio.functional as AF

    from components.features.griffinlim import griffin_lim

    magnitude = torch.rand(3, 65, 40, generator=torch.Generator().manual_seed(1))
    ours = griffin_lim(magnitude, n_fft=128, hop_length=32, win_length=128, n_iter=8, length=1248)
    torch.manual_seed(0)
    theirs = AF.griffinlim(magnitude, torch.hann_window(128), 128, 32, 128, power=1.0, n_iter=8, momentum=0.99,
                           length=1248, rand_init=True)
    assert ours.shape == (3, 1248)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    # seeded: the same magnitudes give the same audio, whatever the caller's random state
    torch.manual_seed(123)
    assert torch.equal(ours, griffin_lim(magnitude, n_fft=128, hop_length=32, win_length=128, n_iter=8, length=1248))


