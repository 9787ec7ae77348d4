from app.web.metrics import _template


def test_ids_become_placeholders_and_unknown_paths_one_label():
    assert _template("/api/jobs/j-1234abcd/pods/j-1234abcd-0/logs", 200) == "/api/jobs/{jobId}/pods/{podName}/logs"
    assert _template("/api/jobs/create", 200) == "/api/jobs/create"
    assert _template("/webterminal/abc.def", 403) == "/webterminal/{credential}"
    assert _template("/static/vendor/graphiql/graphiql.min.js", 200) == "/static/{path}"
    assert _template("/random/probe/123", 404) == "unmatched"
    assert _template("/graphql", 200) == "/graphql"
