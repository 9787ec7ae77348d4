from tests.store.conftest import db  # noqa: F401  (a migrated database per test)
