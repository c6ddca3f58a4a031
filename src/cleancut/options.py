"""One options type for the cut and one for the engine.

:class:`CutOptions`: what a cut-out looks like (output type, format, quality, flattening
colour, quality mode, :class:`~cleancut.edges.EdgeOptions`, :class:`~cleancut.framing.Framing`);
the CLI, the folder batch, Ray and the server (which adds the model to run) all carry it.
:class:`EngineOptions`: what runs the model (model, device, backend, strict, threads).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final, Literal

from .errors import InvalidOptionError
from .io.formats import OutputFormat, extension_for
from .models import DEFAULT_MODEL
from .passes import QualityMode
from .pipeline import OutputType

if TYPE_CHECKING:
    from .edges import EdgeOptions
    from .framing import Framing

__all__ = [
    "CLIP_OPTIONS",
    "DEFAULT_PNG_LEVEL",
    "DEFAULT_QUALITY",
    "OPTIONS",
    "CutOptions",
    "EngineOptions",
    "Option",
    "check_format",
    "options_for",
]

#: PNG zlib level. Level 1 writes a 12 MP cut-out several times faster than Pillow's
#: default 6 for a file only slightly larger (see benchmarks/stages.py).
DEFAULT_PNG_LEVEL = 1
#: JPEG/WebP quality, 0..1.
DEFAULT_QUALITY = 0.8


@dataclass(frozen=True)
class CutOptions:
    type: OutputType = "foreground"
    format: OutputFormat = "png"
    quality: float = DEFAULT_QUALITY
    bg_color: tuple[int, int, int] | None = None
    png_compress_level: int = DEFAULT_PNG_LEVEL
    #: Mask refinement and edge colours (``None``: :class:`~cleancut.edges.EdgeOptions`'
    #: defaults, the bilinear mask with blur-fusion decontamination).
    edges: EdgeOptions | None = None
    #: Background, crop, canvas and size cap.
    framing: Framing | None = None
    #: Quality mode (:mod:`cleancut.passes`): ``fast``, ``default`` or ``best``.
    mode: QualityMode = "default"

    def __post_init__(self) -> None:
        # the one check of format against background, whichever front built the options
        opaque = self.framing is not None and self.framing.opaque
        check_format(self.format, self.type, bg_color=self.bg_color is not None, opaque=opaque)

    @property
    def extension(self) -> str:
        return extension_for(self.format).lstrip(".")

    def loaded(self, max_pixels: int) -> CutOptions:
        """These options with a background image (path or bytes) decoded, so that a batch
        decodes it once, not once per job (:meth:`~cleancut.framing.Framing.loaded`)."""
        if self.framing is None:
            return self
        framing = self.framing.loaded(max_pixels=max_pixels)
        return self if framing is self.framing else replace(self, framing=framing)


def check_format(fmt: str, output_type: str, *, bg_color: bool = False, opaque: bool = False) -> None:
    """Refuse ``alpha8`` of a cut-out on an opaque background (``bg_color``, or a framing
    ``background``): alpha8 is the alpha channel alone, which the background makes 255
    everywhere. Every front (CLI, library, HTTP API, Ray) checks it here, before any work."""
    if fmt != "alpha8" or str(output_type).strip().lower() == "mask" or not (bg_color or opaque):
        return
    what = "bg_color (--bg-color)" if bg_color else "background (--background)"
    raise InvalidOptionError(
        f"format alpha8 is the alpha channel alone, and {what} makes every pixel opaque (all "
        "255): leave it out to get the cut-out's alpha, use type mask for the mask, or png, "
        "webp, jpeg or rgba8 for the picture on that background"
    )


@dataclass(frozen=True)
class EngineOptions:
    """What runs the model: the :class:`~cleancut.remover.Remover` arguments that every
    front (library keywords, CLI flags, ``cleancut serve``, Ray actors) shares."""

    model: str = DEFAULT_MODEL
    #: the family of a model file or URL of your own (``birefnet``, ``isnet``, …)
    model_family: str | None = None
    #: the SHA-256 that pins a model file or URL of your own
    model_sha256: str | None = None
    device: str = "auto"
    backend: str = "auto"
    strict: bool = False
    threads: int | None = None


# --------------------------------------------------------------------------- the one table

Front = Literal["cli", "http", "library"]
_ALL: Final[frozenset[Front]] = frozenset({"cli", "http", "library"})
_ENCODED: Final[frozenset[Front]] = frozenset({"cli", "http"})  # the library encodes on Cutout
_LOCAL: Final[frozenset[Front]] = frozenset({"cli", "library"})  # the server fixes its engine


@dataclass(frozen=True)
class Option:
    """One option of a cut-out, as every front offers it.

    ``kind``: the value's type (``choice`` is a string from ``choices``). ``default``: the
    value used when the option is not given (``None``: nothing, e.g. no threshold).
    ``minimum``/``maximum`` with ``exclusive_*``: the bounds that the option's dataclass
    ``validate()`` checks (the one check; tests/test_fronts.py probes that they agree).
    ``fronts``: where the option exists (the library has no encoding options: it encodes on
    :meth:`~cleancut.remover.Cutout.to_bytes`; the server's engine is set when it starts).
    ``cli_help``/``http_help``: where a front's words differ (a path on the command line is
    an upload on the server).
    """

    name: str
    group: Literal["output", "edges", "framing", "engine", "clip"]
    kind: Literal["choice", "int", "float", "bool", "text"]
    help: str
    default: Any = None
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    fronts: frozenset[Front] = _ALL
    cli_help: str | None = None
    http_help: str | None = None
    metavar: str | None = None
    #: the command line's flag where it is not ``--name`` (``--strict-device``)
    cli_flag: str | None = None

    @property
    def flag(self) -> str:
        return self.cli_flag or "--" + self.name.replace("_", "-")

    def help_for(self, front: Front) -> str:
        own = {"cli": self.cli_help, "http": self.http_help}.get(front)
        return own if own is not None else self.help


def _table() -> tuple[Option, ...]:
    from .edges import DECONTAMINATE_METHODS, MAX_FEATHER, REFINE_METHODS
    from .framing import FITS, MAX_BLUR, MAX_MARGIN, MAX_PADDING, MAX_SIZE, PRESETS
    from .inference.runtime import BACKENDS, DEVICES
    from .io.formats import FORMATS
    from .models import model_names
    from .models.families import family_names
    from .passes import MODE_HELP, QUALITY_MODES
    from .pipeline import OUTPUT_TYPES

    return (
        # ------------------------------------------------------------------ engine
        Option("model", "engine", "text",
               "Model: a published name (cleancut models list: " + ", ".join(model_names()[:4])
               + ", birefnet-general-lite, …), a path to an .onnx file of your own, or an https:// "
               "URL of one.", DEFAULT_MODEL, metavar="NAME|PATH|URL",
               http_help="Model to run: one this server loaded (default: its first)."),
        Option("model_family", "engine", "choice",
               "Family of a model file or URL of your own: how it is fed and read (else the "
               "graph's cleancut.family metadata).", None, tuple(family_names()), fronts=_LOCAL),
        Option("model_sha256", "engine", "text",
               "SHA-256 that pins a model file or URL of your own (a URL without one is fetched "
               "over https only, its SHA-256 printed and recorded on first use).", None,
               fronts=_LOCAL, metavar="HEX"),
        Option("device", "engine", "choice", "Where the model runs.", "auto", tuple(DEVICES), fronts=_LOCAL),
        Option("backend", "engine", "choice",
               "Inference engine; auto picks the fastest one verified on this machine.", "auto",
               tuple(BACKENDS), fronts=_LOCAL),
        Option("strict", "engine", "bool", "Fail instead of falling back to the CPU.", False, fronts=_LOCAL,
               cli_flag="--strict-device"),
        Option("threads", "engine", "int",
               "Inference threads (default: physical cores); more than the CPUs this process may "
               "use are capped to them, with a warning.", None, minimum=1, fronts=_LOCAL),
        # ------------------------------------------------------------------ output
        Option("mode", "output", "choice", MODE_HELP, "default", tuple(QUALITY_MODES)),
        Option("type", "output", "choice",
               "foreground: keep the subject; background: keep the rest; mask: 8-bit gray mask.",
               "foreground", tuple(OUTPUT_TYPES), fronts=_ENCODED),
        Option("format", "output", "choice",
               "Output format. jpeg has no alpha: it is composited on bg_color (white by default).",
               "png", tuple(FORMATS), fronts=_ENCODED,
               cli_help="Output format of photos (default: from the -o extension, else png); it must "
               "agree with -o's extension. jpeg has no alpha: it is composited on --bg-color. alpha8 "
               "refuses --bg-color and an opaque --background. A run of clips refuses it (the "
               "container follows -o).",
               http_help="Output format. rgba8/alpha8 are raw pixels; the size is in the Content-Type "
               "(image/x-rgba8;width=W;height=H). jpeg has no alpha: it is composited on bg_color "
               "(white by default). alpha8 refuses bg_color and an opaque background."),
        Option("quality", "output", "float", "JPEG/WebP quality, 0..1 (1 = lossless WebP).", DEFAULT_QUALITY,
               minimum=0.0, maximum=1.0, fronts=_ENCODED,
               cli_help="JPEG/WebP quality of photos, 0..1 (1 = lossless WebP); a run of clips "
               "refuses it (a clip's quality is its codec's)."),
        Option("bg_color", "output", "text",
               "Composite onto an opaque colour: a name (white), #rrggbb or R,G,B. "
               "Omit (or 'transparent') to keep the alpha channel.", None, fronts=_ENCODED,
               cli_help="Composite onto this colour (name, #rrggbb or R,G,B); default for jpeg: white.",
               metavar="COLOR"),
        # ------------------------------------------------------------------ edges
        Option("refine", "edges", "choice",
               "Mask upsampling: bilinear (default: the reference's) or guided (follows the photo's "
               "edges; softens thin structures).", "bilinear", tuple(REFINE_METHODS)),
        Option("decontaminate", "edges", "choice",
               "Replace the old background's colour in soft edge pixels by the subject's "
               "(default: blur_fusion; none keeps the photo's colours).", "blur_fusion",
               tuple(DECONTAMINATE_METHODS)),
        Option("threshold", "edges", "int", "Make the mask hard: subject where it is at least this value.",
               None, minimum=0, maximum=255, metavar="0..255"),
        Option("feather", "edges", "float",
               f"Soften the mask's edge: a Gaussian of this sigma in pixels, 0..{MAX_FEATHER:g}.", 0.0,
               minimum=0.0, maximum=MAX_FEATHER, metavar="PX"),
        Option("min_island", "edges", "float",
               "Drop subject islands smaller than this fraction of the image area, in [0, 1).", 0.0,
               minimum=0.0, maximum=1.0, exclusive_maximum=True, metavar="F"),
        Option("min_hole", "edges", "float",
               "Fill holes in the subject smaller than this fraction of the image area, in [0, 1).", 0.0,
               minimum=0.0, maximum=1.0, exclusive_maximum=True, metavar="F"),
        # ------------------------------------------------------------------ framing
        Option("background", "framing", "text",
               "What goes behind the subject: a colour (white, #rrggbb, R,G,B), blur (the photo "
               "itself, blurred), an image, or transparent (the default). Opaque outputs have no "
               "alpha, so JPEG works as is.", None,
               cli_help="What goes behind the subject: a colour (white, #rrggbb, R,G,B), blur (the photo "
               "itself, blurred), an image file, or transparent (the default). Opaque outputs have no "
               "alpha, so JPEG works as is.",
               http_help="What goes behind the subject: a colour (white, #rrggbb, R,G,B), blur (the photo "
               "blurred), or transparent (default). For an image, upload it as the multipart file "
               "field 'background'. Opaque outputs have alpha 255 (JPEG-ready).",
               metavar="COLOR|blur|IMAGE"),
        Option("fit", "framing", "choice",
               "A background image: fill covers the canvas (cropped), fit shows all of it "
               "(bars in its mean colour). Default: fill.", "fill", tuple(FITS)),
        Option("blur", "framing", "float",
               f"background=blur: the blur's sigma, a fraction of the output's longer side, "
               f"in (0, {MAX_BLUR:g}] (default 0.02).", 0.02,
               minimum=0.0, maximum=MAX_BLUR, exclusive_minimum=True, metavar="F"),
        Option("shadow", "framing", "bool",
               "A soft shadow under the subject (on a transparent background it goes into the alpha).",
               False),
        Option("crop", "framing", "bool", "Crop to the subject (plus margin), clamped to the photo.", False),
        Option("margin", "framing", "float",
               f"Crop margin on each side, a fraction of the subject's longer side, 0..{MAX_MARGIN:g} "
               "(default 0.05); implies crop.", 0.05, minimum=0.0, maximum=MAX_MARGIN, metavar="F"),
        Option("square", "framing", "bool",
               "Put the subject (with crop) or the photo centred on a square canvas.", False),
        Option("padding", "framing", "float",
               f"Square canvas: free border on each side, a fraction of the side, in [0, {MAX_PADDING:g}); "
               "implies square. A canvas of more than the pixel limit (max_pixels) is refused: set "
               "max_size.", 0.0, minimum=0.0, maximum=MAX_PADDING, exclusive_maximum=True, metavar="F"),
        Option("max_size", "framing", "int",
               f"Scale the output down so its longer side is at most this many pixels (never up; "
               f"1..{MAX_SIZE}).", None, minimum=1, maximum=MAX_SIZE, metavar="PX"),
        Option("preset", "framing", "choice",
               "ecommerce: white background, the subject cropped and centred on a square canvas "
               "filling 85 % of it, at most 2000 px (other options override its values).", None,
               tuple(PRESETS)),
    )  # fmt: skip


#: Options of clips only (``cleancut remove`` on a clip, ``POST /api/remove-video``,
#: :func:`cleancut.remove_video`): the photo fronts never offer them.
CLIP_OPTIONS: Final[tuple[Option, ...]] = (
    Option("smooth", "clip", "bool",
           "Steady the edges over still parts of the clip (a motion-gated average of the network "
           "output over neighbouring frames); off cuts every frame alone.", True),
)  # fmt: skip

_OPTIONS: tuple[Option, ...] | None = None


def options_for(front: Front) -> tuple[Option, ...]:
    """The options that ``front`` offers, in the table's order."""
    return tuple(o for o in OPTIONS() if front in o.fronts)


def OPTIONS() -> tuple[Option, ...]:  # noqa: N802 - the table, built once on first use
    """Every option of a cut-out and of the engine: the one table (name, type, default,
    bounds, help) from which the fronts' parameters are made or checked."""
    global _OPTIONS
    if _OPTIONS is None:
        _OPTIONS = _table()
    return _OPTIONS
