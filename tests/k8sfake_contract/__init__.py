"""Contract tests: the fake Kubernetes API server driven only through kubernetes_asyncio."""
