# Browser assets (GraphiQL, xterm.js) from the npm registry, so the image serves them
# itself: no CDN at run time.
FROM node:20-slim AS assets
WORKDIR /src
COPY web web
RUN cd web && npm ci --no-audit --no-fund --loglevel=error && sh copy-assets.sh

FROM python:3.11-slim
WORKDIR /srv/jobgraph
COPY pyproject.toml README.md ./
COPY app app
COPY rest_compat rest_compat
COPY --from=assets /src/app/web/static/vendor app/web/static/vendor
RUN pip install --no-cache-dir .
ENV JOBGRAPH_HOST=0.0.0.0 JOBGRAPH_DATA_DIR=/var/lib/jobgraph
EXPOSE 8000
CMD ["jobgraph", "serve"]
