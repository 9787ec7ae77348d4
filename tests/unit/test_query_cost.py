"""The cost of a query: objects it can return, page sizes multiplied down the tree."""

from graphql import parse

from app.graphql.cost import LIST_ESTIMATE, query_cost
from app.graphql.schema import schema


def cost(query: str, variables: dict | None = None) -> int:
    return query_cost(schema._schema, parse(query), variables, None)


def test_scalars_cost_nothing_and_pages_multiply():
    assert cost("{ resourcePools { id } }") == LIST_ESTIMATE
    assert cost("{ jobs(first: 5) { totalCount } }") == 1
    assert cost("{ jobs(first: 5) { nodes { jobId } } }") == 1 + 5
    assert cost("{ jobs(first: 50) { nodes { pods { name } } } }") == 1 + 50 + 50 * LIST_ESTIMATE
    assert cost("query($n: Int!) { jobs(first: $n) { edges { node { jobId } } } }", {"n": 7}) == 1 + 7 + 7


def test_aliases_and_fragments_add_up():
    single = cost("{ jobs(first: 100) { nodes { pods { name } events { reason } } } }")
    query = "{ " + " ".join(f"a{i}: jobs(first: 100) {{ ...F }}" for i in range(3)) + " } "
    query += "fragment F on JobConnection { nodes { pods { name } events { reason } } }"
    assert cost(query) == 3 * single


def test_logs_weigh_more():
    assert cost('{ jobs(first: 10) { nodes { logs(podName: "p") } } }') == 1 + 10 + 10 * 10
