"""The family table: one row per generator family, the one place that says how a family is configured,
trained, loaded, evaluated, served and drawn. ``load_generator``, the evaluation plan, the report's
plots, the registry's descriptions and ``melforge generate`` read it; a new family is a new row (and
its package), not an edit in each of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.config import MelforgeConfig
from components.gan import DIFFUSION, MODEL_FAMILY_KEY
from components.names import GAN_FAMILIES
from components.stage_row import SAMPLES, Stage
from components.vae import VAE

if TYPE_CHECKING:
    from components.generation import Generator
    from components.vocoder.interface import Vocoder


@dataclass(frozen=True)
class Family:
    """One generator family. ``plan`` lists the evaluation's entries for it (name, model folder, kind,
    family, steps); a family that is off in this config plans none."""

    name: str  # the model file's family marker (``MODEL_FAMILY_KEY``) and the registry's melforge.family tag
    label: str  # how reports name it
    # its generation class (how it makes audio from its model file), imported on use: the table itself
    # loads no torch, so the stage table and the CLI can read it cheaply
    generator_class: Callable[[], type[Generator]]
    trained_by: str  # the DVC stage(s) that write its model folders
    plan: Callable[[MelforgeConfig], list[dict[str, Any]]]
    one_shot: bool  # one network evaluation per clip: served at 1 step only
    marker: str = "o"  # its points in the report's plots
    colour: str = "tab:blue"
    stage: Stage | None = None  # the stage row of a family that trains in a stage of its own

    @property
    def generator(self) -> type[Generator]:
        return self.generator_class()

    def sampling(self, steps: int) -> str:
        """How one of its clips is made, for the evaluation's samples."""
        return "one network evaluation" if self.one_shot else f"{steps}-step DDIM"

    def describe(self, row: dict[str, Any]) -> str:
        """One evaluated model of this family (an evaluation row), for its registry version."""
        if self.one_shot:
            return f"{self.name} generator, one network evaluation per clip"
        return f"{row['steps']}-step {self.name} {row['kind']}"


def _diffusion_plan(cfg: MelforgeConfig) -> list[dict[str, Any]]:
    """The teacher at each evaluated step count, then every distilled student."""
    students = cfg.distill.stages
    teacher_steps = cfg.eval.teacher_steps or sorted({cfg.distill.teacher_steps, *(s["steps"] for s in students.values())},
                                                     reverse=True)
    plan = [{"name": f"teacher@{n}", "folder": "teacher", "kind": "teacher", "family": DIFFUSION, "steps": int(n)}
            for n in teacher_steps]
    return plan + [{"name": name, "folder": name, "kind": "student", "family": DIFFUSION, "steps": int(s["steps"])}
                   for name, s in students.items()]


def _one_shot_entry(family: str, kind: str, on: bool) -> list[dict[str, Any]]:
    """A one-shot family's one evaluation entry (its model folder is its name), or none when it is off."""
    return [{"name": family, "folder": family, "kind": kind, "family": family, "steps": 1}] if on else []


def _gan_plan(family: str) -> Callable[[MelforgeConfig], list[dict[str, Any]]]:
    return lambda cfg: _one_shot_entry(family, "gan", family in cfg.gan.enabled)


def _mel_generator() -> type[Generator]:
    from components.generation import MelGenerator
    return MelGenerator


def _wavegan_generator() -> type[Generator]:
    from components.generation import WaveGANGenerator
    return WaveGANGenerator


def _specgan_generator() -> type[Generator]:
    from components.generation import SpecGANGenerator
    return SpecGANGenerator


def _vae_generator() -> type[Generator]:
    from components.vae.generator import VAEGenerator
    return VAEGenerator


def _vae_plan(cfg: MelforgeConfig) -> list[dict[str, Any]]:
    return _one_shot_entry(VAE, VAE, bool(cfg.vae.steps))


FAMILIES: tuple[Family, ...] = (
    Family(DIFFUSION, "diffusion", _mel_generator, "train and distill", _diffusion_plan, one_shot=False),
    Family("wavegan", "WaveGAN", _wavegan_generator, "gan@wavegan", _gan_plan("wavegan"), one_shot=True,
           marker="^", colour="tab:green"),
    Family("specgan", "SpecGAN", _specgan_generator, "gan@specgan", _gan_plan("specgan"), one_shot=True,
           marker="v", colour="tab:red"),
    Family(VAE, "VAE", _vae_generator, "vae", _vae_plan, one_shot=True, marker="D", colour="tab:purple",
           stage=Stage("vae", "components.vae.stage:run_vae", "training", "models/vae", "models/metrics/vae.json",
                       artifacts=SAMPLES)),
)
assert {f.name for f in FAMILIES} == {DIFFUSION, *GAN_FAMILIES, VAE}


def family(name: str) -> Family:
    """The row of a family name (a model file, a registry tag or an evaluation row names it)."""
    for row in FAMILIES:
        if row.name == name:
            return row
    raise KeyError(f"unknown generator family {name!r}; known: {', '.join(f.name for f in FAMILIES)}")


def evaluation_plan(cfg: MelforgeConfig) -> list[dict[str, Any]]:
    """Every family's entries, in the table's order: what the evaluate stage scores."""
    return [entry for row in FAMILIES for entry in row.plan(cfg)]


def load_generator(path: Path, device: str = "cpu", vocoder: Vocoder | None = None) -> Generator:
    """Any melforge model file -> its family's generator. A learned ``vocoder`` must match the model's
    mel settings (a family that makes waveforms needs none and ignores it)."""
    from components.models.io import read_model_file

    payload = read_model_file(Path(path))
    gen = family(payload.get(MODEL_FAMILY_KEY, DIFFUSION)).generator.from_payload(payload, device, vocoder)
    gen.check_vocoder(f"the model {path}")
    return gen
