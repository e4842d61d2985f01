"""``/livez`` (the process answers) and ``/readyz`` (it can serve: banks open,
indexes loaded and in sync). Neither needs a key; neither says more than
counts and states."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from ..deps import get_state
from ..state import ServiceState

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/livez", summary="Liveness: the process answers")
async def livez() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: every bank open, every index loaded and in sync",
    responses={503: {"description": "Not ready (yet): loading, or the bank is unreachable."}},
)
async def readyz(state: Annotated[ServiceState, Depends(get_state)]) -> JSONResponse:
    banks: dict[str, Any] = {}
    for name, runtime in state.banks.items():
        info: dict[str, Any] = {"ready": runtime.ready()}
        if runtime.replica is not None:
            info.update(runtime.replica.status().to_dict())
            # Whether, not what: the message may name database hosts (it is in the log).
            info["error"] = info["error"] is not None
        banks[name] = info
    if state.ready():
        return JSONResponse({"status": "ready", "role": state.settings.role, "banks": banks})
    return JSONResponse(
        {
            "error": {
                "code": "not_ready",
                "message": "loading the indexes, or a bank cannot be reached; see banks",
            },
            "banks": banks,
        },
        status_code=503,
        headers={"Retry-After": "1"},
    )
