FROM python:3.11-slim
WORKDIR /srv/jobgraph
COPY pyproject.toml README.md ./
COPY app app
COPY rest_compat rest_compat
COPY migrations migrations
RUN pip install --no-cache-dir -e .
ENV JOBGRAPH_HOST=0.0.0.0 JOBGRAPH_DATA_DIR=/var/lib/jobgraph
EXPOSE 8000
CMD ["jobgraph", "serve"]
