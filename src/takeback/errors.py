"""The one exception tree of TakeBack.

Every error a user can cause or meet is a :class:`TakeBackError`. Third-party
errors (Pillow, pdqhash, sqlite3, OS errors) are translated at the boundary with
``raise ... from exc`` so callers only ever need to catch this tree::

    TakeBackError                     error                (code)
    ├── InputError                    input_error          bad input from the user
    │   ├── FileAccessError           file_unreadable      missing file, permissions, a directory
    │   ├── ImageError                image_error          a file that cannot be used as an image
    │   │   ├── NotAnImageError       not_an_image         no image format recognised
    │   │   ├── CorruptImageError     corrupt_image        truncated or damaged data
    │   │   ├── ImageTooLargeError    image_too_large      file size or pixel count over the limit
    │   │   └── ImageTooSmallError    image_too_small      too few pixels to fingerprint
    │   ├── InvalidHashError          invalid_hash         a hash string of the wrong form
    │   └── ImportFormatError         malformed_import     a bad line in an import file
    └── BankError                     bank_error
        ├── BankNotFoundError         bank_missing         no bank at that place
        ├── BankCorruptError          bank_corrupt         the database is not a TakeBack bank
        ├── BankLockedError           bank_locked          another process holds the write lock
        └── EntryNotFoundError        entry_missing        no fingerprint with that id

Every error has a stable machine-readable ``code`` (used in ``--json`` output and
HTTP responses) and a message that says what happened and what to do.
"""

from __future__ import annotations

__all__ = [
    "BankCorruptError",
    "BankError",
    "BankLockedError",
    "BankNotFoundError",
    "CorruptImageError",
    "EntryNotFoundError",
    "FileAccessError",
    "ImageError",
    "ImageTooLargeError",
    "ImageTooSmallError",
    "ImportFormatError",
    "InputError",
    "InvalidHashError",
    "NotAnImageError",
    "TakeBackError",
]


class TakeBackError(Exception):
    """Base of every error TakeBack raises on purpose.

    Parameters
    ----------
    message : str
        What happened and what to do about it, in plain words.
    path : str, optional
        The file or resource the error is about, when there is one.
    """

    code = "error"

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    def to_dict(self) -> dict[str, str]:
        """The ``{"code", "message"}`` object used in JSON output."""
        return {"code": self.code, "message": self.message}


class InputError(TakeBackError):
    """Something the user supplied cannot be used."""

    code = "input_error"


class FileAccessError(InputError):
    """A file is missing, unreadable or not a regular file."""

    code = "file_unreadable"


class ImageError(InputError):
    """A file could not be used as an image."""

    code = "image_error"


class NotAnImageError(ImageError):
    """No supported image format was recognised."""

    code = "not_an_image"


class CorruptImageError(ImageError):
    """The image data is truncated or damaged."""

    code = "corrupt_image"


class ImageTooLargeError(ImageError):
    """The file or its declared pixel count is over the configured limit."""

    code = "image_too_large"


class ImageTooSmallError(ImageError):
    """The image has too few pixels to fingerprint reliably."""

    code = "image_too_small"


class InvalidHashError(InputError):
    """A hash string does not have the expected form."""

    code = "invalid_hash"


class ImportFormatError(InputError):
    """An import file has a malformed line.

    Parameters
    ----------
    line : int, optional
        The 1-based line number of the first bad line.
    """

    code = "malformed_import"

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        super().__init__(message, path=path)
        self.line = line


class BankError(TakeBackError):
    """The hash bank cannot be used."""

    code = "bank_error"


class BankNotFoundError(BankError):
    """There is no bank at the given place."""

    code = "bank_missing"


class BankCorruptError(BankError):
    """The bank's database is damaged or is not a TakeBack bank."""

    code = "bank_corrupt"


class BankLockedError(BankError):
    """Another process holds the bank's write lock for too long."""

    code = "bank_locked"


class EntryNotFoundError(BankError):
    """No fingerprint with that id is in the bank."""

    code = "entry_missing"
