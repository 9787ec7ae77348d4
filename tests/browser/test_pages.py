"""GraphiQL and the terminal page in a real (headless) Chromium that cannot reach
anything but this machine's loopback: what a user on an offline cluster would see."""

from __future__ import annotations

import json
from urllib.parse import quote

from tests.live.terminal import start_shell_job, terminal_url
from tests.support.jobs import STOP_JOB, create_job

QUERY = "{ jobs { totalCount nodes { jobId } } }"
RESULT = "document.querySelector('.result-window .CodeMirror')?.CodeMirror.getValue()"
# The terminal's whole buffer as text, one line per row (window.term: see terminal.js).
SCREEN = """(() => {
  if (!window.term) return "";
  const buffer = term.buffer.active, lines = [];
  for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i).translateToString(true));
  return lines.join("\\n");
})()"""


async def test_graphiql_runs_a_query_with_no_internet(
    context, network, running, alice, artifacts
):
    job = await create_job(alice, name="graphiql", command=["true"])
    headers = json.dumps({"Authorization": f"Bearer {running.alice_token}"})
    page = await context.new_page()
    # GraphiQL (Strawberry's page) takes its query and headers from the URL.
    await page.goto(f"{running.server.url}/graphql?q={quote(QUERY)}&headers={quote(headers)}")
    await page.wait_for_selector(".graphiql-execute-button")
    # ... and shows them in its editors: the query, and the headers in the headers tab.
    await page.wait_for_function(
        "[...document.querySelectorAll('.graphiql-editor .CodeMirror')]"
        f".map(e => e.CodeMirror.getValue()).join().includes({json.dumps(headers)})"
    )
    await page.click(".graphiql-execute-button")
    answered = await page.wait_for_function(f"({RESULT} || '').includes('totalCount') && {RESULT}")
    text = await answered.json_value()
    await page.screenshot(path=artifacts / "graphiql-offline.png")

    result = json.loads(text)
    assert "errors" not in result, result
    expected = (await alice.execute(QUERY))["jobs"]
    assert result["data"]["jobs"] == expected
    assert job["jobId"] in [n["jobId"] for n in result["data"]["jobs"]["nodes"]]

    # Everything the page loaded came from 127.0.0.1 ...
    assert any("/static/vendor/graphiql/" in url for url in network.urls)
    assert network.off_loopback() == {}, network.off_loopback()
    # ... and the internet is out of reach: the attempt fails inside the browser.
    probe = "https://unpkg.com/graphiql/package.json"
    async with page.expect_event("requestfailed", lambda request: request.url == probe) as failed:
        outcome = await page.evaluate(f"fetch('{probe}').then(() => 'reached', () => 'failed')")
    assert outcome == "failed"
    assert "PROXY" in ((await failed.value).failure or ""), network.off_loopback()
    assert await network.answering_addresses() == {"127.0.0.1"}


async def test_the_terminal_page_is_a_shell_in_the_pod(
    context, network, running, alice, artifacts, tmp_path
):
    job = await start_shell_job(alice, str(tmp_path))
    page_url = (await terminal_url(running.server, running.alice_token, job)).replace("ws://", "http://")
    page = await context.new_page()
    try:
        await page.goto(page_url)
        # The shell's prompt shows the job's workdir (root's prompt ends in '#').
        await page.wait_for_function(f"/workdir[#$]\\s*$/m.test({SCREEN})")
        await page.keyboard.type("echo $((6*7))")
        await page.keyboard.press("Enter")
        await page.wait_for_function(f"/^42$/m.test({SCREEN})")
        await page.screenshot(path=artifacts / "terminal.png")
        assert await page.evaluate("term.cols") > 80  # fitted to the 1280 px window

        # The link worked once: opened again, the page says so instead of a terminal.
        await page.goto(page_url)
        status = await page.wait_for_function(
            "(s => !s.hidden && s.textContent)(document.getElementById('status'))"
        )
        assert "already used" in await status.json_value()
        await page.screenshot(path=artifacts / "terminal-used-link.png")
        assert any("/static/vendor/@xterm/" in url for url in network.urls)
        assert all(network.off_loopback().values()), network.off_loopback()  # none got out
        assert await network.answering_addresses() == {"127.0.0.1"}
    finally:
        await alice.execute(STOP_JOB, {"id": job.job_id})
