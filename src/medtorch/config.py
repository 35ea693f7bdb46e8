"""Run configuration: a validated recipe (YAML) plus ``--set key=value`` overrides.

Every section is a pydantic model that rejects unknown keys; the resolved config is
written to ``config.yaml`` in each run folder, so a run can be reproduced from it alone.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from medtorch.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    dataset: str = Field(description="a name from `medtorch data list`")
    data_dir: str | None = Field(None, description="overrides --data-dir / MEDTORCH_DATA")


class TaskConfig(_Section):
    name: str = Field(description="a registered task name (`medtorch tasks`)")
    params: dict[str, Any] = Field(
        default_factory=dict, description="the task's own settings, validated by the task"
    )


GROUPED_ALIASES = ("grouped", "by_recording", "by_patient", "by_record", "by_lesion")


class SplitConfig(_Section):
    method: Literal[
        "random",
        "stratified",
        "grouped",
        "by_recording",
        "by_patient",
        "by_record",
        "by_lesion",
        "grouped_kfold",
        "protocol",
    ] = "random"
    ratios: tuple[float, float, float] = (0.64, 0.16, 0.20)
    seed: int = 6250
    n_folds: int = 5
    fold: int = 0
    protocol: str | None = None
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="the protocol's own settings (split.method=protocol), validated by it",
    )

    @field_validator("ratios")
    @classmethod
    def _ratios_sum_to_one(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        import math

        if any(r < 0 for r in v) or not math.isclose(sum(v), 1.0, abs_tol=1e-6):
            raise ValueError("expected three non-negative ratios (train, valid, test) summing to 1")
        return v

    @property
    def grouped(self) -> bool:
        return self.method in GROUPED_ALIASES or self.method == "grouped_kfold"


class PreprocessConfig(_Section):
    normalize: Literal["none", "standard", "per_sample", "global"] = "none"
    """standard: per-feature z-score fitted on train; global: one mean/sd fitted on train;
    per_sample: each sample scaled by its own mean/sd (no fitting)."""


class ModelConfig(_Section):
    name: str
    params: dict[str, Any] = Field(
        default_factory=dict, description="the model's own settings, validated by the model"
    )


class OptimConfig(_Section):
    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    momentum: float = Field(0.9, ge=0)
    scheduler: Literal["none", "cosine", "onecycle", "plateau"] = "none"
    warmup_pct: float = Field(0.3, gt=0, lt=1, description="onecycle only")
    plateau_factor: float = Field(0.5, gt=0, lt=1)
    plateau_patience: int = Field(3, ge=0)


class AugmentConfig(_Section):
    """Training-time augmentation of signals (N, C, T) and images (N, C, H, W); all off by
    default."""

    reverse_time: bool = False
    flip_sign: bool = False
    gain: float = Field(0.0, ge=0, lt=1, description="random gain in [1 - gain, 1 + gain]")
    time_shift: int = Field(0, ge=0, description="circular shift of up to this many samples")
    noise_std: float = Field(0.0, ge=0, description="Gaussian noise, x sample sd")
    dihedral: bool = Field(
        False,
        description="images: random horizontal / vertical flips and transposition (the 8 "
        "symmetries of a square), for images without a natural orientation",
    )

    @property
    def enabled(self) -> bool:
        return bool(
            self.reverse_time
            or self.flip_sign
            or self.gain
            or self.time_shift
            or self.noise_std
            or self.dihedral
        )


class TrainerConfig(_Section):
    max_epochs: int = Field(10, ge=1)
    batch_size: int = Field(64, ge=1)
    eval_batch_size: int = Field(1024, ge=1)
    seed: int = 0
    monitor: str = Field(
        "valid_loss",
        description="the history column that picks the best checkpoint; epoch keeps the last",
    )
    monitor_mode: Literal["min", "max", "auto"] = "auto"
    patience: int | None = Field(None, ge=1, description="early stopping; None disables it")
    class_weights: Literal["none", "balanced"] | list[float] = "none"
    sampler: Literal["shuffle", "balanced"] = "shuffle"
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    amp: bool = Field(True, description="mixed precision, used on CUDA only")
    num_workers: int = Field(0, ge=0)
    grad_clip: float | None = Field(None, gt=0)
    deterministic: bool = True
    progress: bool = True
    num_threads: int | Literal["auto"] | None = Field(
        "auto",
        description="torch CPU threads; auto: 1 for models of tiny ops, else all; None keeps torch's",
    )
    augment: AugmentConfig = Field(default_factory=lambda: AugmentConfig())
    cpu_conv: Literal["auto", "mkldnn", "native"] = Field(
        "auto",
        description="CPU convolution kernels (oneDNN or native); auto: native for tiny convolutions",
    )
    sync_batchnorm: bool = Field(
        False,
        description="under torchrun on GPUs: batch-norm statistics over the global batch "
        "(SyncBatchNorm); false keeps per-process statistics",
    )


class EvalConfig(_Section):
    n_bootstrap: int = Field(1000, ge=0)
    ci_level: float = Field(0.95, gt=0, lt=1)
    seed: int = 0
    tta: bool = Field(
        False,
        description="average predictions over the test-time views of the main input "
        "(signals: time-reversed and sign-flipped)",
    )


class RunConfig(_Section):
    name: str = "run"
    description: str = ""
    data: DataConfig
    task: TaskConfig
    split: SplitConfig = Field(default_factory=lambda: SplitConfig())
    preprocess: PreprocessConfig = Field(default_factory=lambda: PreprocessConfig())
    model: ModelConfig
    optim: OptimConfig = Field(default_factory=lambda: OptimConfig())
    trainer: TrainerConfig = Field(default_factory=lambda: TrainerConfig())
    eval: EvalConfig = Field(default_factory=lambda: EvalConfig())

    @model_validator(mode="before")
    @classmethod
    def _split_shorthand(cls, data: Any) -> Any:
        # `split: random` / `split: by_recording` is shorthand for {method: ...}
        if isinstance(data, dict) and isinstance(data.get("split"), str):
            data = {**data, "split": {"method": data["split"]}}
        return data


# keys that moved out of the shared sections into a task's or model's own params: a run
# folder written before the move is read with them moved; a recipe gets told where they went
MOVED_KEYS = {
    ("split", "valid_groups"): ("split", "params", "valid_groups"),
    ("trainer", "after_training_on"): ("model", "params", "after_training_on"),
}


def migrate_moved_keys(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with every key of :data:`MOVED_KEYS` moved to its new place (run folders)."""
    for (section, key), new in MOVED_KEYS.items():
        old = raw.get(section)
        if isinstance(old, dict) and key in old:
            value = old.pop(key)
            node = raw
            for part in new[:-1]:
                node = node.setdefault(part, {})
            if value is not None:
                node.setdefault(new[-1], value)
    return raw


def _known_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, f in model.model_fields.items():
        keys.append(prefix + name)
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys.extend(_known_keys(ann, prefix + name + "."))
    return keys


def _explain(err: ValidationError, source: str) -> ConfigError:
    e = err.errors()[0]
    loc = ".".join(str(p) for p in e["loc"])
    if e["type"] == "extra_forbidden":
        loc_key = tuple(str(p) for p in e["loc"])
        moved = MOVED_KEYS.get((loc_key[0], loc_key[-1])) if len(loc_key) == 2 else None
        if moved:
            return ConfigError(
                f"expected {'.'.join(moved)}, got {loc!r} in {source}; the key moved to the "
                f"{'protocol' if moved[0] == 'split' else moved[0]}'s own params: write it as {'.'.join(moved)}"
            )
        known = _known_keys(RunConfig)
        close = difflib.get_close_matches(loc, known, n=3, cutoff=0.5)
        hint = (
            f"did you mean {', '.join(close)}?" if close else "see the recipe reference in README"
        )
        return ConfigError(f"unknown config key {loc!r} in {source}; {hint}")
    if e["type"] == "missing":
        return ConfigError(f"expected key {loc!r}, got nothing in {source}; add it to the recipe")
    got = e.get("input")
    what = e["msg"]
    for prefix in ("Input should be ", "Value error, expected "):
        if what.startswith(prefix):
            what = what[len(prefix) :]
    if what.startswith(("greater", "less")):
        what = "a value " + what
    return ConfigError(
        f"expected {what[:1].lower() + what[1:]}, got {got!r} in {source} key {loc!r}; "
        "fix that value"
    )


def parse_override(item: str) -> tuple[list[str], Any]:
    """Parse ``a.b=value`` into (["a", "b"], value), value typed by YAML.

    >>> parse_override("trainer.max_epochs=3")
    (['trainer', 'max_epochs'], 3)
    """
    if "=" not in item:
        raise ConfigError(
            f"expected key=value, got {item!r} in --set; write e.g. --set trainer.max_epochs=3"
        )
    key, _, raw = item.partition("=")
    value = yaml.safe_load(raw) if raw != "" else None
    return key.strip().split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for item in overrides:
        path, value = parse_override(item)
        node = raw
        for part in path[:-1]:
            child = node.get(part)
            if isinstance(child, str) and part == "split":  # shorthand -> mapping
                child = {"method": child}
            if child is None:
                child = {}
            if not isinstance(child, dict):
                raise ConfigError(
                    f"expected a section at {'.'.join(path[:-1])!r}, got {child!r} in --set {item}; "
                    "override a leaf key instead"
                )
            node[part] = child
            node = child
        node[path[-1]] = value
    return raw


def load_config(
    source: str | Path | dict[str, Any],
    overrides: list[str] | None = None,
    *,
    migrate: bool = False,
) -> RunConfig:
    """Read a recipe (path or mapping), apply ``--set`` overrides, validate.

    ``migrate``: move the keys of :data:`MOVED_KEYS` to their new place first (a run
    folder's config.yaml written before they moved). Raises :class:`ConfigError` with one
    line naming the file and key on any problem.
    """
    if isinstance(source, dict):
        raw, where = dict(source), "config"
    else:
        path = Path(source)
        where = str(path)
        if not path.is_file():
            from medtorch.recipes import recipe_path

            resolved = recipe_path(str(source))
            if resolved is None:
                raise ConfigError(
                    f"expected a recipe file, got {str(source)!r} (no such file); "
                    "pass a path or a name from `medtorch recipes`"
                )
            path, where = resolved, str(resolved)
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(
                f"expected valid YAML, got a parse error in {where}: "
                f"{str(exc).splitlines()[0]}; fix the syntax"
            ) from None
        if not isinstance(raw, dict):
            raise ConfigError(
                f"expected a mapping at the top of {where}, got {type(raw).__name__}; "
                "write sections such as data:, task:, model:"
            )
    if migrate:
        raw = migrate_moved_keys(raw)
    raw = apply_overrides(raw, list(overrides or []))
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as err:
        raise _explain(err, where) from None


def dump_config(cfg: RunConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
