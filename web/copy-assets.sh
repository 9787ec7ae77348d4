#!/bin/sh
# Copy the browser files jobgraph serves from web/node_modules (installed by `npm ci`
# from the npm registry) into the Python package, so GraphiQL and the terminal page
# work with no internet. The copies are build products (git ignores them).
set -eu
cd "$(dirname "$0")"
out=../app/web/static/vendor
rm -rf "$out"
copy() {  # copy PACKAGE PATH...
  pkg=$1; shift
  for path in "$@"; do
    mkdir -p "$out/$pkg/$(dirname "$path")"
    cp "node_modules/$pkg/$path" "$out/$pkg/$path"
  done
}
copy react umd/react.production.min.js
copy react-dom umd/react-dom.production.min.js
copy js-cookie dist/js.cookie.min.js
copy graphiql graphiql.min.js graphiql.min.css
copy @graphiql/plugin-explorer dist/index.umd.js dist/style.css
copy @xterm/xterm lib/xterm.js css/xterm.css
copy @xterm/addon-fit lib/addon-fit.js
for pkg in react react-dom js-cookie graphiql @graphiql/plugin-explorer @xterm/xterm @xterm/addon-fit; do
  cp "node_modules/$pkg/LICENSE"* "$out/$pkg/" 2>/dev/null || true
done
echo "browser assets copied to app/web/static/vendor"
