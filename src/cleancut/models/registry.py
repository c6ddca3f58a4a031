"""The model registry, as data.

All models are IS-Net (DIS) graphs published by IMG.LY in the npm package
``@imgly/background-removal-data``. Its ``dist/resources.json`` lists each file as 4 MiB
chunks named by their SHA-256. We pin the whole file's size and SHA-256 here as well, so a
tampered ``resources.json`` cannot smuggle in other weights.

``isnet`` (fp32) is not published: it is derived locally from ``isnet_fp16`` by widening the
fp16 weights to fp32 (see :mod:`cleancut.models.graph`), which runs faster on CPUs without fp16
arithmetic and gives the same masks to within 1/255.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UnknownModelError

__all__ = [
    "DATA_PACKAGE",
    "DATA_VERSION",
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "MODELS",
    "ModelSpec",
    "model_names",
    "resolve_model",
]

DATA_PACKAGE = "@imgly/background-removal-data"
DATA_VERSION = "1.4.5"
#: IMG.LY's CDN folder for the pinned package version (the reference's default ``publicPath``).
DEFAULT_BASE_URL = f"https://staticimgly.com/{DATA_PACKAGE}/{DATA_VERSION}/dist/"
DEFAULT_MODEL = "isnet_fp16"

#: Side length of the square the network sees.
INPUT_SIZE = 1024


@dataclass(frozen=True)
class ModelSpec:
    """One model variant.

    ``resource`` is the key in ``resources.json`` for published models; ``derived_from`` names
    the published model a local conversion starts from. ``size``/``sha256`` pin the assembled
    published file (``None`` for derived models, whose bytes depend on the onnx version).
    """

    name: str
    aliases: tuple[str, ...]
    precision: str
    description: str
    resource: str | None = None
    size: int | None = None
    sha256: str | None = None
    derived_from: str | None = None

    @property
    def filename(self) -> str:
        return f"{self.name}.onnx"

    @property
    def progress_key(self) -> str:
        return f"fetch:/models/{self.name}"


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="isnet",
            aliases=("large",),
            precision="fp32",
            description="IS-Net, fp32 weights widened locally from isnet_fp16",
            derived_from="isnet_fp16",
        ),
        ModelSpec(
            name="isnet_fp16",
            aliases=("medium",),
            precision="fp16",
            description="IS-Net, fp16 weights (IMG.LY default)",
            resource="/models/medium",
            size=88_188_479,
            sha256="b6e8497ba978a6f5fbb647e419d2696cd80df5a23cb6a8ea532021911bd76acb",
        ),
        ModelSpec(
            name="isnet_quint8",
            aliases=("small",),
            precision="quint8",
            description="IS-Net, dynamically quantised uint8 weights (smallest, slower on CPU)",
            resource="/models/small",
            size=44_342_436,
            sha256="7001d60734fdc112dd9c062635fb59cd401fb82a9d4213134bce4dbd655c803a",
        ),
    )
}

_ALIASES: dict[str, str] = {alias: spec.name for spec in MODELS.values() for alias in spec.aliases}


def model_names() -> list[str]:
    """Every accepted name: canonical names first, then aliases."""
    return [*MODELS, *_ALIASES]


def resolve_model(name: str | ModelSpec) -> ModelSpec:
    """Return the spec for a model name or alias (case-insensitive)."""
    if isinstance(name, ModelSpec):
        return name
    if not isinstance(name, str):
        raise UnknownModelError(f"model must be a name (one of: {', '.join(model_names())}), got {name!r}")
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    try:
        return MODELS[key]
    except KeyError:
        choices = ", ".join(model_names())
        raise UnknownModelError(f"unknown model {name!r}; choose one of: {choices}") from None
