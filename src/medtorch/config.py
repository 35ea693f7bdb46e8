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
    # allow_inf_nan=False: `optim.lr: .inf` or `.nan` is a one-line error here, not a NaN loss
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` (no tags that build Python objects) that refuses duplicate keys.

    Plain YAML keeps the last of two equal keys, so a recipe with two ``lr:`` lines would
    train with one of them silently; this loader names the key and its line instead.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`, flattened by SafeLoader
                continue
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (lines {seen[key]} and {line})",
                        key_node.start_mark,
                    )  # fmt: skip
                seen[key] = line
            except TypeError:  # an unhashable key: SafeLoader reports it
                continue
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: Path) -> Any:
    """Parse a YAML file with :class:`UniqueKeyLoader` (safe, no duplicate keys).

    Any problem (unreadable, not UTF-8, bad syntax, a duplicate key, a Python tag) is a
    one-line :class:`ConfigError` naming the file.
    """
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"expected UTF-8 text, got byte 0x{exc.object[exc.start]:02x} at offset "
            f"{exc.start} in {path}; save the file as UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"expected a readable YAML file, got {exc.strerror or exc} in {path}; check the path "
            "and its permissions"
        ) from None
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)
    except yaml.YAMLError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        what = next((ln for ln in lines if "duplicate key" in ln), lines[0] if lines else "")
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" line {mark.line + 1}"
        raise ConfigError(
            f"expected valid YAML, got {what} in {path}{where}; fix the syntax"
        ) from None


class DataConfig(_Section):
    """Where the data comes from."""

    dataset: str = Field(description="a name from `medtorch data list`")
    data_dir: str | None = Field(None, description="overrides --data-dir / MEDTORCH_DATA")


class TaskConfig(_Section):
    """The clinical question: a registered task and its own settings."""

    name: str = Field(description="a registered task name (`medtorch tasks`)")
    params: dict[str, Any] = Field(
        default_factory=dict, description="the task's own settings, validated by the task"
    )


GROUPED_ALIASES = ("grouped", "by_recording", "by_patient", "by_record", "by_lesion")


class SplitConfig(_Section):
    """How samples are split into train / valid / test (``split: by_patient`` is short for
    ``split: {method: by_patient}``)."""

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
    ] = Field(
        "random",
        description="random or stratified by rows; grouped (by_recording, by_patient, by_record, "
        "by_lesion: no group in two partitions, audited); grouped_kfold; protocol (a named one)",
    )
    ratios: tuple[float, float, float] = Field(
        (0.64, 0.16, 0.20), description="train, valid, test shares (of groups when grouped)"
    )
    seed: int = Field(6250, description="seed of the split")
    n_folds: int = Field(5, description="grouped_kfold: number of folds")
    fold: int = Field(0, description="grouped_kfold: the test fold (the next one validates)")
    protocol: str | None = Field(
        None, description="split.method=protocol: a protocol registered by a task (e.g. DS1/DS2)"
    )
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
    """Input scaling, fitted on the training partition only."""

    normalize: Literal["none", "standard", "per_sample", "global"] = Field(
        "none",
        description="standard: per-feature z-score fitted on train; global: one mean/sd fitted "
        "on train; per_sample: each sample scaled by its own mean/sd",
    )
    """standard: per-feature z-score fitted on train; global: one mean/sd fitted on train;
    per_sample: each sample scaled by its own mean/sd (no fitting)."""


class ModelConfig(_Section):
    """A registered model (``medtorch models``) and its own settings."""

    name: str = Field(description="a registered model name (`medtorch models`)")
    params: dict[str, Any] = Field(
        default_factory=dict, description="the model's own settings, validated by the model"
    )


class OptimConfig(_Section):
    """The optimizer and its learning-rate schedule."""

    name: Literal["adam", "adamw", "sgd"] = Field("adam", description="the optimizer")
    lr: float = Field(1e-3, gt=0, description="learning rate (the peak one under onecycle)")
    weight_decay: float = Field(0.0, ge=0, description="L2 penalty (decoupled for adamw)")
    momentum: float = Field(0.9, ge=0, description="sgd only")
    scheduler: Literal["none", "cosine", "onecycle", "plateau"] = Field(
        "none", description="learning-rate schedule over the epochs"
    )
    warmup_pct: float = Field(0.3, gt=0, lt=1, description="onecycle only")
    plateau_factor: float = Field(0.5, gt=0, lt=1, description="plateau: lr multiplier")
    plateau_patience: int = Field(3, ge=0, description="plateau: epochs without improvement")


class AugmentConfig(_Section):
    """Training-time augmentation of signals (N, C, T) and images (N, C, H, W); all off by
    default."""

    reverse_time: bool = Field(False, description="signals: random time reversal")
    flip_sign: bool = Field(False, description="signals: random sign flip")
    gain: float = Field(0.0, ge=0, lt=1, description="random gain in [1 - gain, 1 + gain]")
    time_shift: int = Field(0, ge=0, description="circular shift of up to this many samples")
    noise_std: float = Field(0.0, ge=0, description="Gaussian noise, x sample sd")
    dihedral: bool = Field(
        False,
        description="images: random horizontal / vertical flips and transposition (the 8 "
        "symmetries of a square), for images without a natural orientation",
    )

    transforms: list[dict[str, dict[str, Any]]] = Field(
        default_factory=list,
        description="images: torchvision transforms v2, applied per image in order, each "
        "{Name: {param: value}} from an allowed list (RandomResizedCrop, RandomRotation, "
        "ColorJitter, RandomAffine, RandomHorizontalFlip, RandomVerticalFlip, GaussianBlur, "
        "RandomErasing...); e.g. [{ColorJitter: {brightness: 0.2}}]",
    )

    @field_validator("transforms")
    @classmethod
    def _one_name_each(cls, v: list[dict[str, dict[str, Any]]]) -> list[dict[str, dict[str, Any]]]:
        for i, spec in enumerate(v):
            if len(spec) != 1:
                raise ValueError(
                    f"expected one {{Name: {{params}}}} per list item, got {sorted(spec)} at "
                    f"item {i}"
                )
        return v

    @property
    def enabled(self) -> bool:
        return bool(
            self.reverse_time
            or self.flip_sign
            or self.gain
            or self.time_shift
            or self.noise_std
            or self.dihedral
            or self.transforms
        )


class FinetuneConfig(_Section):
    """Transfer learning: train the new head on a frozen backbone first, then unfreeze the
    backbone's layer groups in stages, with smaller learning rates for earlier layers.

    Needs a model that names its layer groups (``finetune_groups``, e.g. ``resnet2d``,
    ``efficientnet_lite0``)."""

    freeze_epochs: int = Field(
        0, ge=0, description="epochs that train only the head (the backbone frozen)"
    )
    unfreeze: list[str | list[str]] = Field(
        default_factory=lambda: list[str | list[str]](["all"]),
        description="after freeze_epochs, the stages of unfreezing, one every unfreeze_every "
        "epochs: each a layer-group name of the model, a list of them, or all",
    )
    unfreeze_every: int = Field(1, ge=1, description="epochs between two unfreezing stages")
    backbone_lr_mult: float = Field(
        1.0, gt=0, description="learning rate of the backbone's groups, x optim.lr"
    )
    layer_lr_decay: float = Field(
        1.0,
        gt=0,
        le=1,
        description="discriminative rates: each group before the last backbone group gets "
        "this factor once more (1: one rate for the whole backbone)",
    )
    freeze_bn: bool = Field(
        False,
        description="keep the backbone's batch-norm statistics (and affine weights) as "
        "pretrained for the whole run; false: they adapt once their group is unfrozen",
    )


class TrainerConfig(_Section):
    """The training loop: epochs, batches, early stopping, devices, checkpoints."""

    max_epochs: int = Field(10, ge=1, description="epochs to train (fewer with patience)")
    batch_size: int = Field(64, ge=1, description="training batch (global under torchrun)")
    eval_batch_size: int = Field(
        1024,
        ge=1,
        description="batch for validation and prediction (fewer rows when a batch would hold "
        "over 2^24 input values, e.g. 111 images of 224 x 224)",
    )
    seed: int = Field(0, description="weights, epoch order, dropout and augmentation")
    monitor: str = Field(
        "valid_loss",
        description="the history column that picks the best checkpoint; epoch keeps the last",
    )
    monitor_mode: Literal["min", "max", "auto"] = Field(
        "auto", description="auto: min for losses, max for other metrics"
    )
    patience: int | None = Field(None, ge=1, description="early stopping; None disables it")
    class_weights: Literal["none", "balanced"] | list[float] = Field(
        "none", description="loss weights per class: balanced (inverse frequency) or a list"
    )
    sampler: Literal["shuffle", "balanced"] = Field(
        "shuffle", description="balanced: draw classes equally often in each epoch"
    )
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        "auto", description="auto: CUDA, else MPS, else the CPU"
    )
    amp: bool = Field(True, description="mixed precision, used on CUDA only")
    num_workers: int = Field(
        0, description="must be 0: data are in-memory arrays, batched in the main process"
    )
    grad_clip: float | None = Field(None, gt=0, description="max gradient norm; None: off")
    label_smoothing: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="smoothed training targets: multiclass (1 - e) one-hot + e / K (weights "
        "and the validation loss unchanged); multilabel y (1 - e) + e / 2",
    )
    ema: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="a moving average of the weights, its decay per step (e.g. 0.998, with "
        "warm-up): the average is validated, kept as the best checkpoint and predicts; None: off",
    )
    deterministic: bool = Field(True, description="deterministic kernels (seeded runs repeat)")
    progress: bool | Literal["auto"] = Field(
        "auto",
        description="the progress bar: auto on a terminal or in a notebook, true always, false never",
    )
    num_threads: int | Literal["auto"] | None = Field(
        "auto",
        description="torch CPU threads; auto: 1 for models of tiny ops, else all; None keeps torch's",
    )
    augment: AugmentConfig = Field(default_factory=lambda: AugmentConfig())
    finetune: FinetuneConfig | None = Field(
        None,
        description="transfer learning: frozen-backbone epochs, staged unfreezing, "
        "discriminative learning rates (None: every layer trains from the start)",
    )
    cpu_conv: Literal["auto", "mkldnn", "native"] = Field(
        "auto",
        description="CPU convolution kernels (oneDNN or native); auto: native for tiny convolutions",
    )
    sync_batchnorm: bool = Field(
        False,
        description="under torchrun on GPUs: batch-norm statistics over the global batch "
        "(SyncBatchNorm); false keeps per-process statistics",
    )
    loggers: list[Literal["tensorboard", "mlflow"]] = Field(
        default_factory=list,
        description="experiment tracking, offline: TensorBoard event files in <run>/tensorboard, "
        "MLflow's local file store in <out>/mlruns (pip install medtorch[tracking])",
    )

    @field_validator("num_workers")
    @classmethod
    def _no_workers(cls, v: int) -> int:
        if v != 0:  # accepting and ignoring it would promise parallel loading that never runs
            raise ValueError(
                "expected 0 (medtorch batches in-memory arrays in the main process: there are "
                "no loader workers to start)"
            )
        return v

    @field_validator("num_threads")
    @classmethod
    def _threads_positive(cls, v: int | str | None) -> int | str | None:
        if isinstance(v, int) and not isinstance(v, bool) and v < 1:
            raise ValueError("expected a thread count >= 1, 'auto' or null")
        return v


class EvalConfig(_Section):
    """How the test split is scored: bootstrap confidence intervals, test-time views."""

    n_bootstrap: int = Field(1000, ge=0, description="bootstrap resamples for the CIs; 0: none")
    ci_level: float = Field(0.95, gt=0, lt=1, description="confidence level of the CIs")
    seed: int = Field(0, description="seed of the bootstrap")
    tta: bool = Field(
        False,
        description="average predictions over the test-time views of the main input "
        "(signals: time-reversed and sign-flipped; images: the 8 flips and rotations of the "
        "square)",
    )


class RunConfig(_Section):
    """One recipe: every section of a run, validated (unknown keys are refused)."""

    name: str = Field("run", description="the run folder is <out>/<name>-<time>")
    description: str = Field("", description="free text, shown in the report")
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


def _explain(err: ValidationError, source: str, set_keys: set[str] | None = None) -> ConfigError:
    e = err.errors()[0]
    loc = ".".join(str(p) for p in e["loc"])
    at = f"{source} key {loc!r}"
    if loc in (set_keys or ()):  # the value came from the command line, not the file
        at = f"--set {loc} (recipe {source})"
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
        where = at if loc in (set_keys or ()) else source
        return ConfigError(f"unknown config key {loc!r} in {where}; {hint}")
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
        f"expected {what[:1].lower() + what[1:]}, got {got!r} in {at}; fix that value"
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


def is_bare_recipe_name(arg: str) -> bool:
    """True for a recipe *name* (``my_recipe``), looked up in the recipe folders;
    anything with a path separator or a YAML suffix is a path and must exist as given.

    >>> is_bare_recipe_name("my_recipe"), is_bare_recipe_name("runs/my_recipe.yaml")
    (True, False)
    """
    return not any(sep in arg for sep in ("/", "\\")) and not arg.endswith((".yaml", ".yml"))


def load_config(
    source: str | Path | dict[str, Any],
    overrides: list[str] | None = None,
    where: str | None = None,
    *,
    migrate: bool = False,
) -> RunConfig:
    """Read a recipe (path, bare recipe name or mapping), apply ``--set`` overrides, validate.

    ``where`` names a mapping's origin in errors (e.g. the run folder's config.yaml).
    ``migrate``: move the keys of :data:`MOVED_KEYS` to their new place first (a run
    folder's config.yaml written before they moved). Raises :class:`ConfigError` with one
    line naming the file and key on any problem.
    """
    if isinstance(source, dict):
        raw, where = dict(source), where or "config"
    else:
        path = Path(source)
        where = where or str(path)
        if not path.is_file():
            from medtorch.recipes import recipe_path

            # only a bare name is looked up: "elsewhere/<shipped name>.yaml" that does not
            # exist must not train the shipped recipe of that name
            resolved = recipe_path(str(source)) if is_bare_recipe_name(str(source)) else None
            if resolved is None:
                what = "a folder" if path.is_dir() else "no such file"
                raise ConfigError(
                    f"expected a recipe file, got {str(source)!r} ({what}); "
                    "pass the path of a .yaml file or a name from `medtorch recipes`"
                )
            path, where = resolved, str(resolved)
        raw = load_yaml(path)
        if raw is None:
            raw = {}
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
        set_keys = {".".join(parse_override(o)[0]) for o in overrides or []}
        raise _explain(err, where, set_keys) from None


def dump_config(cfg: RunConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
