"""The one exception tree of cleancut.

Every error cleancut raises on purpose is a :class:`CleancutError`. Each class also
inherits the built-in exception a caller would naturally catch, so ``except ValueError``
and ``except cleancut.ImageError`` both work::

    CleancutError
    ├── ImageError (ValueError)                  bad input image
    │   ├── InputNotFoundError (FileNotFoundError)  no such input file
    │   ├── UnreadableImageError                 empty, not an image, corrupt
    │   ├── TruncatedImageError                  data ends early
    │   ├── UnsupportedImageError                format or mode we cannot decode
    │   └── ImageTooLargeError                   over the pixel limit (decompression bombs)
    ├── InvalidOptionError (ValueError)          an option out of its range
    ├── ModelError                               anything about model files
    │   ├── UnknownModelError (KeyError)         not a model name or alias
    │   ├── ModelNotFoundError (FileNotFoundError)  missing and offline
    │   ├── DownloadError (ConnectionError)      every source failed
    │   └── ChecksumMismatchError (ValueError)   a chunk or file is not what the registry pins
    ├── DeviceError (RuntimeError)               the requested device cannot be used (strict)
    ├── OutputExistsError (FileExistsError)      refusing to overwrite
    ├── OutputWriteError (OSError)               an output could not be written (disk full)
    ├── UrlRefusedError (ValueError)             a URL the policy forbids (scheme, address, size)
    ├── UrlFetchError (ConnectionError)          an allowed URL could not be fetched
    └── CancelledError (RuntimeError)            the caller's cancel signal fired

Messages say what was expected, what came, and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "CancelledError",
    "ChecksumMismatchError",
    "CleancutError",
    "DeviceError",
    "DownloadError",
    "ImageError",
    "ImageTooLargeError",
    "InputNotFoundError",
    "InvalidOptionError",
    "ModelError",
    "ModelNotFoundError",
    "OutputExistsError",
    "OutputWriteError",
    "TruncatedImageError",
    "UnknownModelError",
    "UnreadableImageError",
    "UnsupportedImageError",
    "UrlFetchError",
    "UrlRefusedError",
]


class CleancutError(Exception):
    """Base class of every error cleancut raises on purpose."""


class ImageError(CleancutError, ValueError):
    """The input image cannot be used."""


class InputNotFoundError(ImageError, FileNotFoundError):
    """The input path does not exist or is not a file."""


class UnreadableImageError(ImageError):
    """The data is empty, not an image, or corrupt."""


class TruncatedImageError(ImageError):
    """The image data ends before the image does."""


class UnsupportedImageError(ImageError):
    """The format or pixel mode is not supported (or its plugin is not installed)."""


class ImageTooLargeError(ImageError):
    """The image has more pixels than the configured limit."""


class InvalidOptionError(CleancutError, ValueError):
    """An option has a value outside its allowed range."""


class ModelError(CleancutError):
    """A model could not be found, fetched, verified or loaded."""


class UnknownModelError(ModelError, KeyError):
    """The name is neither a model nor an alias of one."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class ModelNotFoundError(ModelError, FileNotFoundError):
    """The model is not in the cache and the network may not be used."""


class DownloadError(ModelError, ConnectionError):
    """No source could deliver the model."""


class ChecksumMismatchError(ModelError, ValueError):
    """Downloaded or cached bytes do not match the pinned size or SHA-256."""


class DeviceError(CleancutError, RuntimeError):
    """The requested device or backend cannot be used and strict mode forbids a fallback."""


class OutputExistsError(CleancutError, FileExistsError):
    """The output file exists and overwriting was not asked for."""


class OutputWriteError(CleancutError, OSError):
    """An output file could not be written (no space left, no permission); nothing partial
    is left behind, so a rerun after fixing the cause resumes."""


class UrlRefusedError(CleancutError, ValueError):
    """A URL the policy does not allow: another scheme than http(s), a private, loopback or
    link-local address (unless allowed), too many redirects, or an answer over the size cap."""


class UrlFetchError(CleancutError, ConnectionError):
    """An allowed URL could not be fetched: no connection, an HTTP error status, or no
    complete answer within the time limit."""


class CancelledError(CleancutError, RuntimeError):
    """The caller's cancel signal fired; the operation stopped between two stages."""
