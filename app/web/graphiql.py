"""GraphiQL that works with no internet: Strawberry's own page, its CDN links pointed at
the copies jobgraph serves under /static/vendor (see `make assets`)."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from strawberry.http.ides import get_graphql_ide_html

STATIC_DIR = Path(__file__).parent / "static"
VENDOR_DIR = STATIC_DIR / "vendor"
VENDOR_URL = "/static/vendor"

# https://unpkg.com/<package>@<version>/<path>  ->  /static/vendor/<package>/<path>
_CDN_URL = re.compile(r"https://unpkg\.com/((?:@[^/@]+/)?[^/@]+)@[^/]+/([^\"']+)")
# The copies are byte-identical but served by us; SRI and CORS attributes are for the CDN.
_CDN_ATTRS = re.compile(r"\s+(?:integrity=\"[^\"]*\"|crossorigin(?:=\"[^\"]*\")?)")


class AssetsMissing(RuntimeError):
    pass


@cache
def offline_graphiql_html() -> str:
    html = get_graphql_ide_html(graphql_ide="graphiql")
    html = _CDN_ATTRS.sub("", _CDN_URL.sub(rf"{VENDOR_URL}/\1/\2", html))
    missing = [
        url for url in re.findall(rf"{VENDOR_URL}/[^\"']+", html)
        if not (VENDOR_DIR / url.removeprefix(VENDOR_URL + "/")).is_file()
    ]
    if missing:
        raise AssetsMissing(
            f"GraphiQL assets are not installed ({', '.join(missing)}); run `make assets`"
        )
    if "unpkg.com" in html or "cdn." in html:
        raise AssetsMissing("the GraphiQL page still refers to a CDN")
    return html.replace("<title>Strawberry GraphiQL</title>", "<title>jobgraph · GraphiQL</title>")
