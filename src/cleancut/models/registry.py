"""The model registry, as data: every published model, its source, checksums, family, licence.

IS-Net (the default) comes from IMG.LY's npm package ``@imgly/background-removal-data``:
its ``dist/resources.json`` lists each file as 4 MiB chunks named by their SHA-256. We pin
the whole file's size and SHA-256 here as well, so a tampered ``resources.json`` cannot
smuggle in other weights. ``isnet`` (fp32) is not published: it is derived locally from
``isnet_fp16`` by widening the fp16 weights to fp32 (see :mod:`cleancut.models.graph`).

Every other model is one ONNX file at its publisher's URL, pinned by size and SHA-256 (the
md5 too where the publisher's own code gives only that). Where each value comes from is in
``checksum_source``. A model whose publisher gives no checksum (the BiRefNet HR and 2K
exports) is fetched over https only and its SHA-256 recorded on first use, as for a URL of
your own. Non-commercial models are fetched only after an explicit licence acknowledgement.

A model may also be a file of your own (a path) or a URL: :func:`resolve_model` turns those
into a :class:`ModelSpec` too, whose family comes from the caller or the graph's metadata.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.parse
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import InvalidOptionError, ModelNotFoundError, UnknownModelError

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

#: rembg's release folder, where the checksums pinned below were published with the files.
_REMBG = "https://github.com/danielgatis/rembg/releases/download/v0.0.0/"
#: the BiRefNet authors' own release (the upstream of rembg's copies).
_BIREFNET = "https://github.com/ZhengPeng7/BiRefNet/releases/download/v1/"
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
#: what the npm package declares ("SEE LICENSE IN LICENSE.md"); the IS-Net weights are Apache-2.0
_IMGLY_LICENSE = "IMG.LY LICENSE.md (IS-Net: Apache-2.0)"


@dataclass(frozen=True)
class ModelSpec:
    """One model: a published entry, or a file or URL of the user's own.

    Sources: ``resource`` (a key of IMG.LY's ``resources.json``), ``url`` (one file),
    ``path`` (a local file), or ``derived_from`` (built locally from another model).
    ``size``/``sha256`` pin the file (``None`` where it is not known in advance: derived
    files, and files recorded on first use). ``family`` is ``None`` only for a user's file
    whose family its graph's metadata must name.
    """

    name: str
    family: str | None
    description: str = ""
    aliases: tuple[str, ...] = ()
    license: str = ""
    noncommercial: bool = False
    resource: str | None = None
    url: str | None = None
    path: Path | None = None
    derived_from: str | None = None
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    checksum_source: str = ""
    #: the input size its publisher states (the graph decides at load)
    input_size: tuple[int, int] | None = None
    precision: str = "fp32"

    @property
    def filename(self) -> str:
        return f"{self.name}.onnx"

    @property
    def progress_key(self) -> str:
        return f"fetch:/models/{self.name}"

    @property
    def published(self) -> bool:
        """In the registry (not a user's file or URL)."""
        return self.name in MODELS

    @property
    def custom(self) -> bool:
        return self.path is not None or (self.url is not None and not self.published)


def _birefnet(
    name: str,
    file: str,
    description: str,
    *,
    sha256: str | None,
    md5: str | None,
    size: int | None,
    input_size: tuple[int, int] = (1024, 1024),
    base: str = _REMBG,
    source: str = "md5: rembg sessions; SHA-256 and size: pinned by other public projects",
) -> ModelSpec:
    return ModelSpec(
        name=name,
        family="birefnet",
        description=description,
        license="MIT",
        url=base + file,
        size=size,
        sha256=sha256,
        md5=md5,
        checksum_source=source if sha256 else "none published: SHA-256 recorded on first use (https only)",
        input_size=input_size,
    )


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="isnet",
            family="isnet-imgly",
            aliases=("large",),
            precision="fp32",
            description="IS-Net (IMG.LY), fp32 weights widened locally from isnet_fp16",
            license=_IMGLY_LICENSE,
            derived_from="isnet_fp16",
            input_size=(1024, 1024),
        ),
        ModelSpec(
            name="isnet_fp16",
            family="isnet-imgly",
            aliases=("medium",),
            precision="fp16",
            description="IS-Net (IMG.LY), fp16 weights (the default)",
            license=_IMGLY_LICENSE,
            resource="/models/medium",
            size=88_188_479,
            sha256="b6e8497ba978a6f5fbb647e419d2696cd80df5a23cb6a8ea532021911bd76acb",
            checksum_source="assembled from the npm package's SHA-256-named chunks",
            input_size=(1024, 1024),
        ),
        ModelSpec(
            name="isnet_quint8",
            family="isnet-imgly",
            aliases=("small",),
            precision="quint8",
            description="IS-Net (IMG.LY), dynamically quantised uint8 weights (smallest, slower on CPU)",
            license=_IMGLY_LICENSE,
            resource="/models/small",
            size=44_342_436,
            sha256="7001d60734fdc112dd9c062635fb59cd401fb82a9d4213134bce4dbd655c803a",
            checksum_source="assembled from the npm package's SHA-256-named chunks",
            input_size=(1024, 1024),
        ),
        ModelSpec(
            name="isnet-general-use",
            family="isnet",
            description="IS-Net general use (xuebinqin/DIS), as its authors run it",
            license="Apache-2.0",
            url=_REMBG + "isnet-general-use.onnx",
            size=178_648_008,
            sha256="60920e99c45464f2ba57bee2ad08c919a52bbf852739e96947fbb4358c0d964a",
            md5="fc16ebd8b0c10d971d3513d564d01e29",
            checksum_source="md5: rembg sessions; SHA-256 and size: pinned by other public projects",
            input_size=(1024, 1024),
        ),
        _birefnet(
            "birefnet-general",
            "BiRefNet-general-epoch_244.onnx",
            "BiRefNet general (Swin-L; authors' DIS-VD S .911, wF .875)",
            sha256="58f621f00f5d756097615970a88a791584600dcf7c45b18a0a6267535a1ebd3c",
            md5="7a35a0141cbbc80de11d9c9a28f52697",
            size=972_666_916,
        ),
        _birefnet(
            "birefnet-general-lite",
            "BiRefNet-general-bb_swin_v1_tiny-epoch_232.onnx",
            "BiRefNet general lite (Swin-T; authors' DIS-VD S .882, wF .830)",
            sha256="5600024376f572a557870a5eb0afb1e5961636bef4e1e22132025467d0f03333",
            md5="4fab47adc4ff364be1713e97b7e66334",
            size=224_005_088,
        ),
        _birefnet(
            "birefnet-portrait",
            "BiRefNet-portrait-epoch_150.onnx",
            "BiRefNet trained for portraits",
            sha256="1ba1c8ff5a7bbfadc8d8d13fb11d7be793f91f23d9d466549e37a854f6668f99",
            md5="c3a64a6abf20250d090cd055f12a3b67",
            size=972_666_916,
        ),
        _birefnet(
            "birefnet-dis",
            "BiRefNet-DIS-epoch_590.onnx",
            "BiRefNet trained on DIS5K (dichotomous segmentation)",
            sha256="6470117bac6f8d82a3f62921056f52d0f5c4d36d1d832096331d5ea38a03acb5",
            md5="2d4d44102b446f33a4ebb2e56c051f2b",
            size=972_666_916,
        ),
        _birefnet(
            "birefnet-hrsod",
            "BiRefNet-HRSOD_DHU-epoch_115.onnx",
            "BiRefNet trained for high-resolution salient objects",
            sha256="4f5837663194fb88f603b76782eae05a3c29f5749872ca1bfb636bd26e7f6bfc",
            md5="c017ade5de8a50ff0fd74d790d268dda",
            size=972_666_916,
        ),
        _birefnet(
            "birefnet-cod",
            "BiRefNet-COD-epoch_125.onnx",
            "BiRefNet trained for camouflaged objects",
            sha256="91ec48f566db475cf6e4caa7e9cd997f352edfcc372372f437e2fbefc1557b13",
            md5="f6d0d21ca89d287f17e7afe9f5fd3b45",
            size=972_666_916,
        ),
        _birefnet(
            "birefnet-massive",
            "BiRefNet-massive-TR_DIS5K_TR_TEs-epoch_420.onnx",
            "BiRefNet trained on the massive dataset mix",
            sha256="a94814cac438a31f95287811882628644a04b22d313ef3071d2ba904b5f627b8",
            md5="33e726a2136a3d59eb0fdf613e31e3e9",
            size=972_666_916,
        ),
        _birefnet(
            "birefnet-hr",
            "BiRefNet_HR-general-epoch_130.onnx",
            "BiRefNet HR general at 2048² (authors' DIS-VD S .927, wF .894)",
            sha256=None,
            md5=None,
            size=None,
            input_size=(2048, 2048),
            base=_BIREFNET,
        ),
        _birefnet(
            "birefnet-lite-2k",
            "BiRefNet_lite-general-2K-epoch_232.onnx",
            "BiRefNet lite general at 2560×1440",
            sha256=None,
            md5=None,
            size=None,
            input_size=(1440, 2560),
            base=_BIREFNET,
        ),
        ModelSpec(
            name="ben2-base",
            family="ben2",
            description="BEN2 Base (PramaLLC; DIS5K MAE .0331 per its authors)",
            license="MIT",
            url="https://huggingface.co/PramaLLC/BEN2/resolve/main/BEN2_Base.onnx",
            size=222_932_053,
            sha256="22cea62108ff53b7ccc20f7a008bf30494228d84b1687f29ecbe76936a998101",
            checksum_source="SHA-256 and size: pinned by other public projects",
            input_size=(1024, 1024),
            precision="fp16",
        ),
        ModelSpec(
            name="bria-rmbg-2.0",
            family="birefnet",
            description="BRIA RMBG-2.0 (BiRefNet architecture, BRIA's weights)",
            license="CC BY-NC 4.0 (not for commercial use)",
            noncommercial=True,
            url=_REMBG + "bria-rmbg-2.0.onnx",
            size=1_024_331_469,
            sha256="5b486f08200f513f460da46dd701db5fbb47d79b4be4b708a19444bcd4e79958",
            checksum_source="SHA-256: rembg sessions; size: pinned by other public projects",
            input_size=(1024, 1024),
        ),
    )
}

_ALIASES: dict[str, str] = {alias: spec.name for spec in MODELS.values() for alias in spec.aliases}


def model_names() -> list[str]:
    """Every accepted name: canonical names first, then aliases."""
    return [*MODELS, *_ALIASES]


def _registry_key(name: str) -> str | None:
    key = name.strip().lower()
    for candidate in (key, key.replace("-", "_"), key.replace("_", "-")):
        if candidate in MODELS:
            return candidate
        if candidate in _ALIASES:
            return _ALIASES[candidate]
    return None


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or text.lower().endswith(".onnx") or text.startswith(("~", "."))


def _check_sha256(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    value = str(sha256).strip().lower()
    if not _SHA256_HEX.fullmatch(value):
        raise InvalidOptionError(f"model_sha256 must be 64 hexadecimal digits, got {sha256!r}")
    return value


def _check_family(family: str | None) -> str | None:
    if family is None:
        return None
    from .families import get_family

    return get_family(family).name


def resolve_model(
    name: str | os.PathLike[str] | ModelSpec,
    *,
    family: str | None = None,
    sha256: str | None = None,
) -> ModelSpec:
    """The spec for a registry name or alias (case-insensitive, ``-`` or ``_``), a path to an
    ONNX file of your own, or an ``https://`` URL of one.

    ``family`` names the family of a file or URL of your own (else its graph's metadata
    must: ``cleancut.family``); ``sha256`` pins such a file (a URL without it is fetched
    over https only and its SHA-256 recorded on first use). Published models know their
    family and checksums: giving either for one is an :class:`InvalidOptionError` unless it
    agrees.
    """
    sha = _check_sha256(sha256)
    fam = _check_family(family)
    if isinstance(name, ModelSpec):
        spec = name
    elif isinstance(name, os.PathLike):
        spec = _path_spec(Path(os.fspath(name)), fam, sha)
    elif not isinstance(name, str) or not name.strip():
        raise UnknownModelError(
            f"model must be a name (one of: {', '.join(model_names())}), a path to an .onnx file "
            f"or an https:// URL, got {name!r}"
        )
    elif (key := _registry_key(name)) is not None:
        spec = MODELS[key]
    elif urllib.parse.urlsplit(name.strip()).scheme.lower() in ("http", "https"):
        spec = _url_spec(name.strip(), fam, sha)
    elif _looks_like_path(name) or Path(name).expanduser().exists():
        spec = _path_spec(Path(name).expanduser(), fam, sha)
    else:
        choices = ", ".join(model_names())
        raise UnknownModelError(
            f"unknown model {name!r}; choose one of: {choices}; or give a path to an .onnx file "
            "or an https:// URL (with --model-family)"
        )
    if spec.custom or not spec.published:
        if fam is not None and spec.family not in (None, fam):
            spec = replace(spec, family=fam)
        if sha is not None and spec.sha256 not in (None, sha):
            spec = replace(spec, sha256=sha)
        return spec
    if fam is not None and fam != spec.family:
        raise InvalidOptionError(
            f"model {spec.name!r} is of the {spec.family} family; --model-family applies to files of your own"
        )
    if sha is not None and spec.sha256 is not None and sha != spec.sha256:
        raise InvalidOptionError(
            f"model {spec.name!r} is pinned to SHA-256 {spec.sha256}, not {sha}; "
            "--model-sha256 applies to files of your own"
        )
    if sha is not None and spec.sha256 is None and spec.url is not None:
        return replace(spec, sha256=sha)
    return spec


def _custom_name(stem: str, key: str) -> str:
    clean = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.") or "model"
    return f"{clean}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def _path_spec(path: Path, family: str | None, sha256: str | None) -> ModelSpec:
    path = path.expanduser()
    if not path.exists():
        raise ModelNotFoundError(f"no such model file: {path}")
    if not path.is_file():
        raise ModelNotFoundError(f"the model {path} is not a file")
    path = path.resolve()
    return ModelSpec(
        name=_custom_name(path.stem, str(path)),
        family=family,
        description=f"your file {path}",
        path=path,
        sha256=sha256,
        checksum_source="given with --model-sha256" if sha256 else "",
    )


def _url_spec(url: str, family: str | None, sha256: str | None) -> ModelSpec:
    parts = urllib.parse.urlsplit(url)
    stem = Path(urllib.parse.unquote(parts.path)).stem or parts.hostname or "model"
    return ModelSpec(
        name=_custom_name(stem, url),
        family=family,
        description=f"your URL {url}",
        url=url,
        sha256=sha256,
        checksum_source="given with --model-sha256" if sha256 else "recorded on first use",
    )
