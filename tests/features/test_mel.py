import librosa
import numpy as np
import pytest

from components.features.griffinlim import mel_to_audio, spectral_convergence_db
from components.features.mel import LogMel, MelSpec, fit_frames
from components.features.packing import pack_snake, unpack_snake
from components.features.stats import MelStats, RunningBinStats
from helpers import sine

SPEC = MelSpec(sample_rate=16000, n_fft=512, hop_length=128, n_mels=40)


def test_snake_packing_is_exactly_invertible(rng):
    mel = rng.normal(size=(2, 128, 384)).astype(np.float32)
    packed = pack_snake(mel, 3)
    assert packed.shape == (2, 3, 128, 128)
    np.testing.assert_array_equal(unpack_snake(packed), mel)


def test_snake_packing_keeps_neighbouring_frames_adjacent():
    mel = np.tile(np.arange(12, dtype=np.float32), (2, 1))  # frame index as value
    packed = pack_snake(mel, 3)  # (3, 2, 4)
    assert packed[0, 0].tolist() == [0, 1, 2, 3]
    assert packed[1, 0].tolist() == [7, 6, 5, 4]  # reversed: frame 4 sits beside frame 3
    assert packed[2, 0].tolist() == [8, 9, 10, 11]  # and frame 8 beside frame 7
    assert packed[0, 0, -1] + 1 == packed[1, 0, -1]


def test_snake_packing_rejects_indivisible_frames():
    with pytest.raises(ValueError, match="divisible"):
        pack_snake(np.zeros((4, 10)), 3)


def test_batched_logmel_matches_librosa_per_clip(rng):
    audio = rng.normal(scale=0.1, size=(3, 8000)).astype(np.float32)
    ours = LogMel(SPEC)(audio).numpy()
    for clip, mel in zip(audio, ours):
        ref = librosa.feature.melspectrogram(y=clip, sr=16000, n_fft=512, hop_length=128, n_mels=40, power=2.0,
                                             center=True, pad_mode="constant")
        np.testing.assert_allclose(mel, np.log(np.maximum(ref, SPEC.log_floor)), atol=2e-3)


def test_running_stats_equal_numpy(rng):
    data = rng.normal(loc=3.0, scale=2.0, size=(10, 8, 50))
    running = RunningBinStats(8)
    for chunk in np.array_split(data, 3):
        running.update(chunk)
    stats = running.finish(3.0)
    np.testing.assert_allclose(stats.mean, data.mean(axis=(0, 2)), rtol=1e-10)
    np.testing.assert_allclose(stats.std, data.std(axis=(0, 2)), rtol=1e-8)


def test_normalisation_inverse_is_exact_inside_three_sigma_and_clips_outside(rng):
    stats = MelStats(mean=np.linspace(-5, 0, 8), std=np.linspace(0.5, 2, 8), clip_sigma=3.0)
    x = (stats.mean[:, None] + stats.std[:, None] * rng.uniform(-2.9, 2.9, size=(8, 20))).astype(np.float32)
    y = stats.normalise(x)
    assert np.abs(y).max() <= 1.0
    np.testing.assert_allclose(stats.denormalise(y), x, atol=1e-5)
    far = stats.mean[:, None] + 10 * stats.std[:, None] * np.ones((8, 2))
    assert np.all(stats.normalise(far) == 1.0)
    assert MelStats.from_json(stats.to_json()).clip_sigma == 3.0


def test_fit_frames_crops_and_pads_with_floor():
    mel = np.ones((2, 5))
    assert fit_frames(mel, 3, -11.5).shape == (2, 3)
    padded = fit_frames(mel, 7, -11.5)
    assert padded.shape == (2, 7) and np.all(padded[:, 5:] == -11.5)


def test_griffin_lim_round_trip_of_a_tone_is_close():
    audio = sine(440, 1.0, 16000)[None]
    logmel = LogMel(SPEC)(audio).numpy()
    rebuilt = mel_to_audio(logmel, SPEC, n_iter=32)
    assert rebuilt.shape[0] == 1 and abs(rebuilt.shape[1] - 16000) <= SPEC.hop_length
    sc = spectral_convergence_db(logmel, rebuilt, SPEC)
    assert sc[0] < -10.0  # -10 dB: the magnitude error's norm is under 10^(-10/20), about 32%, of the signal's
