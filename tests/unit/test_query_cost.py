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


def _fanned_out(levels: int) -> str:
    fragments = [f"fragment F{i} on JobConnection {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)]
    fragments.append(f"fragment F{levels} on JobConnection {{ nodes {{ jobId }} }}")
    return "{ jobs(first: 1) { ...F0 } } " + " ".join(fragments)


def test_fragments_are_costed_once_each():
    # Walked per spread this would be 2^60 visits; per fragment it is 61.
    assert cost(_fanned_out(60)) == 1 + 2**60


def test_fanout_guard_counts_expanded_fields_without_expanding():
    from app.graphql.fanout import MAX_EXPANDED_FIELDS, fanout_error

    assert fanout_error(parse(_fanned_out(8))) is None  # 2^8 fields
    error = fanout_error(parse(_fanned_out(60)))
    assert error is not None and f"more than {MAX_EXPANDED_FIELDS}" in error.message
    cycle = parse("{ jobs { ...A } } fragment A on JobConnection { ...B } "
                  "fragment B on JobConnection { ...A totalCount }")
    error = fanout_error(cycle)
    assert error is not None and "spreads itself" in error.message
