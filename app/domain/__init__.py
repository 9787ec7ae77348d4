"""Plain types and validation. Imports nothing of FastAPI, Strawberry, SQLAlchemy or Kubernetes."""
