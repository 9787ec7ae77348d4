"""The GraphQL endpoint: POST for operations, GET for GraphiQL."""

from __future__ import annotations

from starlette.requests import HTTPConnection
from strawberry.fastapi import GraphQLRouter

from app.domain.errors import Unauthenticated
from app.domain.principal import Principal
from app.graphql.context import GraphQLContext
from app.graphql.schema import schema
from app.services import Services
from app.web.auth import UNAUTHENTICATED_MESSAGE, PrincipalDep, ServicesDep
from app.web.public_url import public_base_url


def build_context(
    conn: HTTPConnection, services: Services, principal: Principal | None
) -> GraphQLContext:
    """The context of one operation, for the GraphQL route and the REST facade alike."""
    return GraphQLContext(
        services=services,
        principal=principal,
        public_url=public_base_url(conn, services.settings),
    )


async def graphql_context(
    conn: HTTPConnection, services: ServicesDep, principal: PrincipalDep
) -> GraphQLContext:
    # The GraphiQL page itself is public (a browser cannot attach a header to it);
    # every operation needs a principal.
    is_ide_page = (
        conn.scope["type"] == "http"
        and conn.scope["method"] == "GET"
        and "query" not in conn.query_params
    )
    if principal is None and not is_ide_page and conn.scope["type"] == "http":
        raise Unauthenticated(UNAUTHENTICATED_MESSAGE)
    return build_context(conn, services, principal)


def graphql_router() -> GraphQLRouter:
    return GraphQLRouter(schema, context_getter=graphql_context, graphql_ide="graphiql")
