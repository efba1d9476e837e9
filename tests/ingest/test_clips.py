import numpy as np
import pytest

from components.ingest.clips import normalise, peak, rms_dbfs, slice_clips, to_mono
from components.torchaudio_ops import resample
from helpers import sine


def test_slicing_with_hop_and_padded_tail():
    audio = np.arange(10, dtype=np.float32)
    clips = slice_clips(audio, clip_samples=4, hop_samples=3, min_last_fraction=0.5)
    assert [o for o, _ in clips] == [0, 3, 6]
    np.testing.assert_array_equal(clips[2][1], [6, 7, 8, 9])
    clips = slice_clips(np.arange(9, dtype=np.float32), clip_samples=4, hop_samples=4, min_last_fraction=0.25)
    assert [o for o, _ in clips] == [0, 4, 8]
    np.testing.assert_array_equal(clips[-1][1], [8, 0, 0, 0])  # zero-padded tail


def test_short_tail_below_fraction_is_dropped():
    clips = slice_clips(np.ones(9, np.float32), clip_samples=4, hop_samples=4, min_last_fraction=0.5)
    assert [o for o, _ in clips] == [0, 4]


def test_audio_shorter_than_a_clip():
    assert slice_clips(np.ones(3, np.float32), clip_samples=4, hop_samples=4, min_last_fraction=0.5)[0][1].tolist() == [1, 1, 1, 0]
    assert slice_clips(np.ones(1, np.float32), clip_samples=4, hop_samples=4, min_last_fraction=0.5) == []


def test_mono_mixdown_averages_channels():
    stereo = np.stack([np.ones(5, np.float32), -np.ones(5, np.float32) * 0.5])
    np.testing.assert_allclose(to_mono(stereo), 0.25)


def test_peak_normalisation_hits_the_target():
    out = normalise(sine(440, 0.1, 16000, amp=0.1), mode="peak", peak_dbfs=-1.0, loudness_dbfs=-20)
    assert peak(out) == pytest.approx(10 ** (-1 / 20), rel=1e-5)


def test_loudness_normalisation_hits_rms_but_never_exceeds_peak_ceiling():
    out = normalise(sine(440, 0.5, 16000, amp=0.01), mode="loudness", peak_dbfs=-1.0, loudness_dbfs=-20)
    assert rms_dbfs(out) == pytest.approx(-20, abs=0.05)
    spiky = np.zeros(1000, np.float32)
    spiky[0] = 0.5
    assert peak(normalise(spiky, mode="loudness", peak_dbfs=-1.0, loudness_dbfs=-3)) <= 10 ** (-1 / 20) + 1e-6


def test_resampling_keeps_frequency_and_duration():
    audio = sine(1000, 1.0, 48000)
    out = resample(audio[None], 48000, 16000)[0]
    assert out.shape == (16000,)
    spectrum = np.abs(np.fft.rfft(out))
    assert np.argmax(spectrum) == pytest.approx(1000, abs=1)  # 1 Hz bins over 1 s


@pytest.mark.parametrize("orig", [8000, 22050, 44100, 48000])
def test_resampling_a_stream_in_blocks_gives_the_whole_signal_s_samples(orig):
    from components.torchaudio_ops import StreamResampler, resample

    rng = np.random.default_rng(orig)
    x = (0.3 * rng.standard_normal(123_457)).astype(np.float32)
    whole = resample(x[None, :], orig, 16000)[0]
    stream, parts, i = StreamResampler(orig, 16000), [], 0
    while i < len(x):
        size = int(rng.integers(1, 30_000))
        parts.append(stream.feed(x[i:i + size]))
        i += size
    parts.append(stream.finish())
    streamed = np.concatenate(parts)
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, atol=1e-6)


def test_the_clip_slicer_fed_in_pieces_cuts_the_windows_of_the_whole_signal():
    from components.ingest.clips import ClipSlicer

    rng = np.random.default_rng(0)
    for _ in range(300):
        n, clip, hop = int(rng.integers(0, 400)), int(rng.integers(1, 50)), int(rng.integers(1, 80))
        fraction = float(rng.choice([0.0, 0.5, 1.0]))
        x = rng.standard_normal(n).astype(np.float32)
        expected = _windows_by_hand(x, clip, hop, fraction)
        slicer, got, i = ClipSlicer(clip_samples=clip, hop_samples=hop, min_last_fraction=fraction), [], 0
        while i < n:
            size = int(rng.integers(1, 40))
            got += slicer.feed(x[i:i + size])
            i += size
        got += slicer.finish()
        assert [o for o, _ in got] == [o for o, _ in expected]
        assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(got, expected))


def _windows_by_hand(x, clip, hop, fraction):
    out, start = [], 0
    while start < len(x):
        window = x[start:start + clip]
        if len(window) < clip:
            if len(window) >= fraction * clip:
                out.append((start, np.pad(window, (0, clip - len(window)))))
            break
        out.append((start, window))
        start += hop
    return out
