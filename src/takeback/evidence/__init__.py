"""Evidence packages: what a platform, a lawyer or the police need, sealed.

::

    from takeback.evidence import CaseInfo, write_package, verify_package

    result = write_package(Path("case-12"), examination, suspect_path=Path("fake.jpg"),
                           original_path=Path("me.jpg"), case=CaseInfo(case_id="12"))
    verify_package(result.path).ok      # True until any byte changes

Layout, JSON schema and custody format: ``docs/evidence.md``.
"""

from .custody import CustodyLog, check_chain, step_hash
from .errors import EvidenceInputError, PackageTargetError, PackageWriteError
from .images import redaction_policy
from .model import (
    CUSTODY_SCHEMA,
    EVIDENCE_SCHEMA,
    REPORT_MAX_SIDE,
    Artefact,
    CaseInfo,
    PackageResult,
)
from .package import write_package
from .verify import PackageVerification, verify_package

__all__ = [
    "CUSTODY_SCHEMA",
    "EVIDENCE_SCHEMA",
    "REPORT_MAX_SIDE",
    "Artefact",
    "CaseInfo",
    "CustodyLog",
    "EvidenceInputError",
    "PackageResult",
    "PackageTargetError",
    "PackageVerification",
    "PackageWriteError",
    "check_chain",
    "redaction_policy",
    "step_hash",
    "verify_package",
    "write_package",
]
