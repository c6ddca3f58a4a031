"""What a model family is: the numbers and rules one kind of segmentation network needs.

A :class:`Family` says how its networks are fed (input size, normalisation, channel order,
the resize its reference uses), which graph output is the final map, what turns that map
into probabilities (a sigmoid, a min-max rescale), how its graphs are prepared and which
passes the quality modes run. Resolved against one graph (:class:`GraphInfo`, read from the
file) it gives a :class:`Recipe`: what the pipeline, the backends and the web page use.
Nothing outside :mod:`cleancut.models` knows a family's numbers; they read the recipe.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from ...errors import InvalidOptionError, ModelError

__all__ = [
    "QUANTIZED_OPS",
    "Activation",
    "Downsample",
    "Family",
    "GraphInfo",
    "Normalization",
    "Pass",
    "Recipe",
    "Rescale",
    "Upsample",
]

#: How the photo is brought to the network's input size. ``imgly``: IMG.LY's grid
#: (``src = dst · s/S``) through OpenCV; ``imgly-exact``: the exact port of their resize;
#: ``bilinear``: half-pixel bilinear without anti-aliasing (PyTorch's ``interpolate``);
#: ``pil-bilinear`` / ``pil-lanczos``: Pillow's anti-aliased filters (torchvision's ``Resize``
#: on a PIL image).
Downsample = Literal["imgly", "imgly-exact", "bilinear", "pil-bilinear", "pil-lanczos"]
#: How the mask is brought back to the photo's size. ``imgly``: their grid (exact port up to
#: 2 MP, OpenCV above); ``imgly-exact``: always the exact port; ``bilinear``: half-pixel
#: bilinear; ``pil-bicubic``: Pillow's bicubic (``Image.resize``'s default).
Upsample = Literal["imgly", "imgly-exact", "bilinear", "pil-bicubic"]
Activation = Literal["none", "sigmoid"]
Rescale = Literal["none", "minmax"]

#: Operators of dynamically quantised graphs: such a graph's output can jump on a one-level
#: change of its input, so it is fed on the exact grid of its reference.
QUANTIZED_OPS: Final = frozenset({"ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"})


@dataclass(frozen=True)
class Pass:
    """One network run: the photo resized to ``size`` wide and ``height`` high (``size``²
    when ``height`` is not given), mirrored left-right if ``flip``. (Re-exported by
    :mod:`cleancut.passes`, where the quality modes combine them.)"""

    size: int = 1024
    flip: bool = False
    height: int | None = None

    def __post_init__(self) -> None:
        if self.height is None:
            object.__setattr__(self, "height", self.size)

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the network input."""
        assert self.height is not None
        return self.height, self.size


@dataclass(frozen=True)
class Normalization:
    """``x = (v · scale − mean) / std`` per network channel, ``v`` the 0..255 value.

    ``mean`` and ``std`` are in the network's channel order, as torchvision's ``Normalize``
    applies them to the tensor; ``channels="BGR"`` feeds blue first."""

    scale: float = 1.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    channels: Literal["RGB", "BGR"] = "RGB"

    def affine(self) -> list[tuple[int, float, float]]:
        """Per network channel: the photo's RGB index it reads and ``(a, b)`` with ``x = v·a + b``."""
        order = (0, 1, 2) if self.channels == "RGB" else (2, 1, 0)
        return [(src, self.scale / self.std[c], -self.mean[c] / self.std[c]) for c, src in enumerate(order)]

    def to_json(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "mean": list(self.mean),
            "std": list(self.std),
            "channels": self.channels,
        }


@dataclass(frozen=True)
class GraphInfo:
    """What a model file says about itself, read once (see :func:`cleancut.models.graph.inspect`)."""

    input_name: str
    #: the input's dimensions: an int where static, ``None`` where symbolic
    input_shape: tuple[int | None, ...]
    input_type: str
    #: every output: name, dimensions (as ``input_shape``), element type
    outputs: tuple[tuple[str, tuple[int | None, ...], str], ...]
    #: the operator producing each output
    producers: Mapping[str, str] = field(default_factory=dict)
    op_types: frozenset[str] = frozenset()
    has_fp16: bool = False
    #: the graph's upsampling targets are constants that can be rescaled (IS-Net's exports)
    resizable: bool = False
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def quantized(self) -> bool:
        return bool(self.op_types & QUANTIZED_OPS)

    @property
    def static_size(self) -> tuple[int, int] | None:
        """The input's (height, width) where the graph fixes it."""
        if len(self.input_shape) == 4:
            h, w = self.input_shape[2], self.input_shape[3]
            if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
                return h, w
        return None

    def describe(self) -> str:
        def dims(shape: tuple[int | None, ...]) -> str:
            return "[" + ",".join("?" if d is None else str(d) for d in shape) + "]"

        outs = ", ".join(f"{n} {dims(s)} {t}" for n, s, t in self.outputs)
        return f"input {self.input_name} {dims(self.input_shape)} {self.input_type}; outputs {outs}"

    def to_json(self) -> dict[str, Any]:
        return {
            "input_name": self.input_name,
            "input_shape": list(self.input_shape),
            "input_type": self.input_type,
            "outputs": [[n, list(s), t] for n, s, t in self.outputs],
            "producers": dict(self.producers),
            "op_types": sorted(self.op_types),
            "has_fp16": self.has_fp16,
            "resizable": self.resizable,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GraphInfo:
        def dims(v: Any) -> tuple[int | None, ...]:
            return tuple(d if isinstance(d, int) else None for d in v)

        return cls(
            input_name=str(data["input_name"]),
            input_shape=dims(data["input_shape"]),
            input_type=str(data["input_type"]),
            outputs=tuple((str(n), dims(s), str(t)) for n, s, t in data["outputs"]),
            producers={str(k): str(v) for k, v in data["producers"].items()},
            op_types=frozenset(str(o) for o in data["op_types"]),
            has_fp16=bool(data["has_fp16"]),
            resizable=bool(data["resizable"]),
            metadata={str(k): str(v) for k, v in data["metadata"].items()},
        )


@dataclass(frozen=True)
class Recipe:
    """One model's recipe: a family resolved against its graph. Everything the pipeline,
    the backends and the page need to feed the network and read its answer."""

    family: str
    height: int
    width: int
    norm: Normalization
    down: Downsample
    up: Upsample
    #: what the network's final map still needs to be probabilities (the prepared graph
    #: carries it, so every backend runs it; the page applies it to the published file)
    activation: Activation
    rescale: Rescale
    #: the passes of each quality mode
    modes: Mapping[str, tuple[Pass, ...]]
    #: logit gain on the mean of several passes (1: plain mean)
    average_gain: float = 1.0
    #: the 8-bit step of the map: ``round`` (half up), or ``floor`` where the reference truncates
    quantize: Literal["round", "floor"] = "round"

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the model's own input."""
        return self.height, self.width

    def passes(self, mode: str) -> tuple[Pass, ...]:
        """The passes of the quality ``mode`` (``fast``, ``default``, ``best``; any case)."""
        key = mode.strip().lower() if isinstance(mode, str) else None
        if key not in self.modes:
            raise InvalidOptionError(f"mode must be one of {', '.join(self.modes)}, got {mode!r}")
        return self.modes[key]

    def pass_sizes(self) -> set[tuple[int, int]]:
        return {p.shape for ps in self.modes.values() for p in ps}

    def to_json(self) -> dict[str, Any]:
        """The recipe as the web page reads it (``/api/config``)."""
        return {
            "family": self.family,
            "height": self.height,
            "width": self.width,
            "normalization": self.norm.to_json(),
            "downsample": self.down,
            "upsample": self.up,
            "activation": self.activation,
            "rescale": self.rescale,
            "average_gain": self.average_gain,
            "quantize": self.quantize,
            "modes": {
                m: [{"height": p.shape[0], "width": p.shape[1], "flip": p.flip} for p in ps]
                for m, ps in self.modes.items()
            },
        }


def _round32(v: float) -> int:
    return max(32, round(v / 32.0) * 32)


@dataclass(frozen=True)
class Family:
    """A kind of segmentation network. Subclass it (one module per family) where a rule
    needs more than these fields."""

    name: str
    description: str
    #: (height, width) of the input where the graph leaves it symbolic
    default_size: tuple[int, int]
    norm: Normalization
    down: Downsample
    up: Upsample
    #: what the final map is: ``sigmoid`` = logits (a sigmoid is added unless the graph
    #: already ends in one); ``none`` = probabilities already
    activation: Activation
    rescale: Rescale = "none"
    #: where several outputs of the map's shape exist, which one is final
    final_output: Literal["first", "last"] = "first"
    #: fast mode's input as a fraction of the model's own, where the graph can be resized
    fast_scale: float | None = None
    #: the second size of best mode's passes, a fraction (``None``: mirrored passes only)
    best_scale: float | None = None
    average_gain: float = 1.0
    #: the 8-bit step of the map (``floor``: the reference truncates ``v · 255``)
    quantize: Literal["round", "floor"] = "round"
    #: ``(channels, ...)`` the input must have; the map must be ``[N, 1, H, W]``
    input_channels: int = 3

    # -- reading a graph

    def check(self, info: GraphInfo) -> None:
        """A :class:`~cleancut.errors.ModelError` saying what was found unless the graph is one
        this family can run: one 4-D float input with 3 channels, a ``[1, 1, H, W]`` map."""
        problems = []
        shape = info.input_shape
        if len(shape) != 4:
            problems.append(f"the input must be 4-D [N, {self.input_channels}, H, W]")
        elif shape[1] not in (None, self.input_channels):
            problems.append(f"the input must have {self.input_channels} channels, not {shape[1]}")
        if info.input_type not in ("float", "float16"):
            problems.append(f"the input must be float32 or float16, not {info.input_type}")
        if not self.map_outputs(info):
            problems.append("no output is a [N, 1, H, W] map")
        if problems:
            raise ModelError(
                f"this graph cannot run as a {self.name} model: {'; '.join(problems)} "
                f"(found: {info.describe()})"
            )

    def map_outputs(self, info: GraphInfo) -> list[str]:
        """The outputs shaped like a mask: 4-D, one channel, float."""
        return [
            name
            for name, shape, kind in info.outputs
            if len(shape) == 4
            and shape[1] in (1, None)
            and kind in ("float", "float16")
            and (shape[1] == 1 or len(info.outputs) == 1)
        ]

    def output_name(self, info: GraphInfo) -> str:
        """The final map: the only mask-shaped output, or the family's first/last of them,
        preferring those at the input's own size."""
        self.check(info)
        candidates = self.map_outputs(info)
        size = info.static_size
        if size is not None:
            full = [n for n in candidates if _spatial(info, n) == size]
            candidates = full or candidates
        return candidates[0] if self.final_output == "first" else candidates[-1]

    def input_size(self, info: GraphInfo) -> tuple[int, int]:
        return info.static_size or self.default_size

    # -- the recipe

    def sampling(self, info: GraphInfo) -> tuple[Downsample, Upsample]:
        return self.down, self.up

    def needs_activation(self, info: GraphInfo) -> Activation:
        """``sigmoid`` only where the map is logits and the graph does not end in one."""
        if self.activation == "sigmoid" and info.producers.get(self.output_name(info)) != "Sigmoid":
            return "sigmoid"
        return "none"

    def modes(self, info: GraphInfo) -> dict[str, tuple[Pass, ...]]:
        h, w = self.input_size(info)
        own = Pass(w, height=h)
        resizable = info.resizable

        def scaled(f: float | None, flip: bool = False) -> Pass | None:
            if f is None or not resizable:
                return None
            return Pass(_round32(w * f), flip=flip, height=_round32(h * f))

        fast = scaled(self.fast_scale) or own
        best = [own, Pass(w, flip=True, height=h)]
        second = scaled(self.best_scale)
        if second is not None:
            best += [second, Pass(second.size, flip=True, height=second.height)]
        return {"fast": (fast,), "default": (own,), "best": tuple(best)}

    def recipe(self, info: GraphInfo) -> Recipe:
        h, w = self.input_size(info)
        down, up = self.sampling(info)
        return Recipe(
            family=self.name,
            height=h,
            width=w,
            norm=self.norm,
            down=down,
            up=up,
            activation=self.needs_activation(info),
            rescale=self.rescale,
            modes=self.modes(info),
            average_gain=self.average_gain,
            quantize=self.quantize,
        )


def _spatial(info: GraphInfo, name: str) -> tuple[int | None, int | None] | None:
    for n, shape, _ in info.outputs:
        if n == name and len(shape) == 4:
            return shape[2], shape[3]
    return None
