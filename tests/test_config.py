import re
from pathlib import Path

import pytest
import yaml

from components.config_base import ConfigError
from components.params_file import apply_overrides, load_config, parse_override, profile_params, resolve_params, validate_params
from components.profiles import PROFILES


@pytest.mark.parametrize("name", list(PROFILES))
def test_every_profile_is_valid(name):
    assert validate_params(profile_params(name)).profile == name


def test_unknown_key_names_the_key_and_the_allowed_ones():
    with pytest.raises(ConfigError) as err:
        validate_params(apply_overrides(profile_params("demo"), ["mel.n_mel=64"]), "params.yaml")
    assert "mel.n_mel" in str(err.value) and "n_mels" in str(err.value)


def test_bad_value_names_the_key_and_the_value():
    with pytest.raises(ConfigError) as err:
        validate_params(apply_overrides(profile_params("demo"), ["mel.layout=zigzag"]))
    assert "mel.layout" in str(err.value) and "zigzag" in str(err.value) and "snake" in str(err.value)


def test_override_values_are_yaml_like_dvc():
    assert parse_override("data.sources=[builtin:digits, /x]") == (["data", "sources"], ["builtin:digits", "/x"])
    assert parse_override("mel.fmax=8000")[1] == 8000
    with pytest.raises(ConfigError):
        parse_override("mel.n_mels")


def test_cross_section_check_fmax_against_nyquist():
    with pytest.raises(ConfigError, match="mel.fmax"):
        validate_params(apply_overrides(profile_params("demo"), ["mel.fmax=9000"]))


def test_snake_layout_needs_frames_divisible_by_channels():
    with pytest.raises(ConfigError, match="divisible"):
        validate_params(apply_overrides(profile_params("demo"), ["mel.layout=snake", "mel.frames=100"]))


def test_resolve_params_writes_params_yaml_only_when_valid(tmp_path: Path):
    params = tmp_path / "params.yaml"
    cfg = resolve_params(params, profile="demo", overrides=["mel.n_mels=48"])
    assert cfg.mel.n_mels == 48 and yaml.safe_load(params.read_text())["mel"]["n_mels"] == 48
    before = params.read_text()
    with pytest.raises(ConfigError):
        resolve_params(params, overrides=["mel.n_mels=-1"])
    assert params.read_text() == before  # a bad override never touches the record
    assert load_config(params).mel.n_mels == 48
    assert not list(tmp_path.glob(".params.*"))  # no temp files left behind


def test_missing_params_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "params.yaml")


def test_builtin_clips_shorter_than_a_clip_fail_before_any_work():
    with pytest.raises(ConfigError, match="data.digits.seconds.*audio.clip_seconds=1"):
        validate_params(apply_overrides(profile_params("demo"), ["data.sources=[builtin:digits]"]))
    ok = validate_params(apply_overrides(profile_params("demo"), ["data.sources=[builtin:digits]", "audio.clip_seconds=1"]))
    assert ok.audio.clip_seconds == 1


def test_orchestration_timeouts_are_per_stage_and_checked():
    from components.params_file import profile_params, validate_params

    cfg = validate_params(apply_overrides(profile_params("demo"), ["orchestration.stage_timeout_minutes={default: 5, train: 60}"]))
    assert cfg.orchestration.timeout_seconds("train") == 3600 and cfg.orchestration.timeout_seconds("distill@student-4") == 300
    with pytest.raises(ConfigError, match="unknown stage.*trian"):
        validate_params(apply_overrides(profile_params("demo"), ["orchestration.stage_timeout_minutes={default: 5, trian: 60}"]))
    with pytest.raises(ConfigError, match="'default'"):
        validate_params(apply_overrides(profile_params("demo"), ["orchestration.stage_timeout_minutes={train: 60}"]))


@pytest.mark.parametrize("overrides, expected", [
    (["vocoder.kind=learned", "vocoder.steps=0"], "kind 'learned' needs a trained vocoder"),
    (["vocoder.kernel=6"], "kernel (6) must be odd"),
    (["vocoder.steps=10", "vocoder.segment_frames=200"], "vocoder.segment_frames (200) x mel.hop_length (500)"),
    (["vocoder.stft_resolutions=[[512, 1024]]"], "stft_resolutions must be"),
])
def test_bad_vocoder_settings_fail_before_any_work_naming_the_field(overrides, expected):
    with pytest.raises(ConfigError) as err:
        validate_params(apply_overrides(profile_params("demo"), overrides))
    assert expected in str(err.value)


def test_the_full_profile_serves_a_learned_vocoder_and_the_cpu_ones_griffin_lim_without_training_one():
    kinds = {name: validate_params(profile_params(name)).vocoder for name in PROFILES}
    for cpu_profile in ("demo", "cpu", "digits"):  # the cpu one's was never served: see docs/benchmarks.md
        assert kinds[cpu_profile].kind == "griffinlim" and kinds[cpu_profile].steps == 0
    assert kinds["full"].kind == "learned" and kinds["full"].adversarial


def test_one_configuration_the_schema_defaults_the_demo_profile_and_params_yaml_agree():
    from components.config import MelforgeConfig
    from components.params_file import read_params_file

    demo = validate_params(profile_params("demo")).to_params()
    assert MelforgeConfig().to_params() == demo
    assert read_params_file(Path(__file__).resolve().parents[1] / "params.yaml") == demo


def test_hydra_style_prefixes_are_refused_with_what_melforge_accepts():
    for text in ["+mel.n_mels=64", "++mel.n_mels=64", "~mel.n_mels"]:
        with pytest.raises(ConfigError, match="melforge accepts key=value"):
            apply_overrides(profile_params("demo"), [text])


def test_the_teacher_sampler_choices_are_the_sampler_table():
    from typing import get_args

    from components.config_training import DistillConfig
    from components.models.sampler import SAMPLERS

    assert set(get_args(DistillConfig.model_fields["teacher_sampler"].annotation)) == set(SAMPLERS)


def test_the_loss_weighting_choices_are_the_diffusion_module_s():
    from typing import get_args

    from components.config_training import DistillConfig, TrainConfig
    from components.models.diffusion import LOSS_WEIGHTINGS

    for section in (TrainConfig, DistillConfig):
        assert get_args(section.model_fields["loss_weighting"].annotation) == LOSS_WEIGHTINGS


@pytest.mark.parametrize("override, expected", [
    ("train.steps=true", "'train.steps': expected a number, not true/false"),
    ("data.nsynth_mini.pitches=[48, true]", "'data.nsynth_mini.pitches': expected a number, not true/false"),
    ("train.bf16=1", "'train.bf16': expected true or false"),
    ("train.lr=.inf", "'train.lr': Input should be a finite number"),
    ("distill.lr=.nan", "'distill.lr': Input should be a finite number"),
    ("seed=1180591620717411303424", "'seed': integers must be at most 2147483647"),
    ("train.batch_size=4294967296", "'train.batch_size': integers must be at most 2147483647"),
    ("seed=-1", "'seed': Input should be greater than or equal to 0"),
    ("distill.teacher_steps=8192", "'distill.teacher_steps': Input should be less than or equal to 4096"),
])
def test_nonsense_values_are_refused_naming_the_key(override, expected):
    with pytest.raises(ConfigError, match="^demo: " + re.escape(expected)):
        validate_params(apply_overrides(profile_params("demo"), [override]), "demo")


def test_a_key_given_twice_in_params_yaml_is_an_error_naming_both_lines(tmp_path: Path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  steps: 5\nseed: 1\ntrain:\n  lr: 0.1\n")
    with pytest.raises(ConfigError, match=r"key 'train' appears twice in one section \(lines 1 and 4\)"):
        load_config(path)
    path.write_text("train:\n  steps: 5\n  steps: 6\n")
    with pytest.raises(ConfigError, match=r"key 'steps' appears twice in one section \(lines 2 and 3\)"):
        load_config(path)
