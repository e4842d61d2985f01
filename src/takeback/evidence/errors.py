"""Errors of the evidence package, in the :mod:`takeback.errors` tree.

::

    TakeBackError
    ├── InputError
    │   ├── PackageTargetError   package_target     the target exists, or its folder is missing
    │   └── EvidenceInputError   evidence_input     files and examination do not belong together
    └── PackageWriteError        package_write      a write failed; nothing was left behind

A tampered package is *not* an error: :func:`~takeback.evidence.verify_package`
returns a :class:`~takeback.evidence.PackageVerification` that lists what broke.
"""

from __future__ import annotations

from ..errors import InputError, TakeBackError

__all__ = ["EvidenceInputError", "PackageTargetError", "PackageWriteError"]


class PackageTargetError(InputError):
    """The package cannot go where it was asked to (exists, no such folder, not writable)."""

    code = "package_target"


class EvidenceInputError(InputError):
    """The files given do not match the examination, or a case field is unusable."""

    code = "evidence_input"


class PackageWriteError(TakeBackError):
    """Writing the package failed part-way; the partial package was removed."""

    code = "package_write"
