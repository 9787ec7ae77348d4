"""`POST /api/login/account` and `POST /api/login/outLogin`: the legacy console's login
form and its logout (reference/legacy-client.md, "Login, logout, cross-origin").

These two routes are the one exception to "each REST route runs a named GraphQL
operation": a login happens before there is a principal, and /graphql serves only
principals (an anonymous login mutation would have every unauthenticated caller's
documents parsed, validated and executed there). So they call the core's
`SessionService` directly and only translate shapes; every rule (who matches, what the
token is, rate limit, audit) is in app/core/sessions.py."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from app.domain.errors import DomainError, RateLimited, Unauthenticated
from app.web.auth import EITHER_CREDENTIAL, CallerDep, ServicesDep, credential
from rest_compat import models, shapes
from rest_compat.envelope import RestError, fail, ok

LOGGED_OUT = "已退出登录"
MAX_TYPE_LENGTH = 32


def _kind(body: dict[str, Any]) -> str:
    """The form's `type`, echoed back as Ant Design Pro expects (`account` by default)."""
    kind = body.get("type")
    return kind if isinstance(kind, str) and 0 < len(kind) <= MAX_TYPE_LENGTH else "account"


def _credentials(body: dict[str, Any]) -> tuple[str, str]:
    ak, sk = body.get("ak"), body.get("sk")
    for name, value in (("ak", ak), ("sk", sk)):
        if not isinstance(value, str) or not value.strip():
            raise RestError(
                "BAD_REQUEST",
                f"{name} is required: send {{\"ak\": \"<user name>\", \"sk\": \"<an API token "
                "or OIDC token of that user>\", \"type\": \"account\"}",
                field=name,
            )
    return ak.strip(), sk.strip()  # type: ignore[union-attr]


def login_router() -> APIRouter:
    router = APIRouter(prefix="/api/login", tags=["login (legacy console)"])

    @router.post(
        "/account", summary="Log in with a user name (ak) and an API or OIDC token (sk)",
        response_model=models.LoginAnswer,
        responses={
            400: {"model": models.LoginRefused, "description": "ak or sk missing"},
            401: {"model": models.LoginRefused, "description": "The pair does not match"},
            429: {"model": models.LoginRefused, "description": "Too many attempts from this address"},
        },
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/LoginRequest"}}}}},
    )
    async def login(request: Request, services: ServicesDep) -> JSONResponse:
        kind = "account"
        try:
            body = shapes.parse_json_body(await request.body())
            kind = _kind(body)
            user, secret = _credentials(body)
            session = await services.sessions.login(
                user=user, secret=secret, client_addr=request.client.host if request.client else None
            )
        except DomainError as refusal:
            retry = refusal.retry_after if isinstance(refusal, RateLimited) else None
            error = RestError(refusal.code, refusal.message, field=refusal.field, retry_after=retry)
            return fail(error, {"status": "error", "type": kind, "currentAuthority": "guest"})
        except RestError as error:
            return fail(error, {"status": "error", "type": kind, "currentAuthority": "guest"})
        authority = "admin" if session.principal.is_admin else "user"
        expires_at = session.expires_at.isoformat().replace("+00:00", "Z") if session.expires_at else None
        return JSONResponse({
            "status": "ok", "type": kind, "currentAuthority": authority, "token": session.token,
            "success": True, "message": "",
            "data": {"token": session.token, "user": session.principal.user,
                     "currentAuthority": authority, "expiresAt": expires_at},
        })

    @router.post(
        "/outLogin", summary="Log out: revokes the token a login handed out",
        response_model=models.Envelope[models.LoggedOut],
        openapi_extra={"security": EITHER_CREDENTIAL},
    )
    async def logout(
        request: Request, services: ServicesDep, caller: CallerDep
    ) -> dict[str, Any]:
        # Always 200: the console awaits this before dropping its token, and a token that
        # no longer works (or none at all) has no session left to end.
        ended = False
        try:
            secret = credential(request)
        except Unauthenticated:
            secret = None
        if caller.principal is not None and secret:
            ended = await services.sessions.logout(secret, actor=caller.principal)
        return ok({"sessionEnded": ended}, LOGGED_OUT)

    return router
