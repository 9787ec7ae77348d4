"""The one schema instance, with its guards. The REST facade executes against it too."""

from __future__ import annotations

from datetime import datetime

from graphql import ASTValidationRule
from strawberry.extensions import AddValidationRules, MaxTokensLimiter
from strawberry.extensions.max_aliases import create_validator as aliases_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from app.graphql.cost import QueryCost
from app.graphql.documents import DocumentCache
from app.graphql.errors import ErrorCodes, LoggedErrorsSchema, MaskUnexpectedErrors
from app.graphql.mutation_limit import MutationRateLimit
from app.graphql.mutations import Mutation
from app.graphql.queries import Query
from app.graphql.scalars import DateTime
from app.graphql.subscriptions import Subscription
from app.graphql.usage import UsageQuery, UsageSubscription

MAX_DEPTH = 12
MAX_TOKENS = 4000
MAX_ALIASES = 30

# Built once: rule classes made per request would defeat the validation cache
# (strawberry-graphql issue 4635).
GUARD_RULES: list[type[ASTValidationRule]] = [
    depth_rule(MAX_DEPTH, None),
    aliases_rule(MAX_ALIASES),
]

schema = LoggedErrorsSchema(
    # Areas with their own module add their root fields here.
    query=merge_types("Query", (Query, UsageQuery)),
    mutation=Mutation,
    subscription=merge_types("Subscription", (Subscription, UsageSubscription)),
    config=StrawberryConfig(auto_camel_case=True, scalar_map={datetime: DateTime}),
    extensions=[
        lambda: MaxTokensLimiter(MAX_TOKENS),
        lambda: AddValidationRules(GUARD_RULES),
        # After the two above (hooks run in list order): it parses with the token limit and
        # validates with the guard rules, once per document text.
        DocumentCache,
        QueryCost,
        MutationRateLimit,
        ErrorCodes,
        MaskUnexpectedErrors,
    ],
)


def sdl() -> str:
    return schema.as_str() + "\n"
