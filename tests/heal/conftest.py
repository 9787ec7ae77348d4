from tests.runtime.conftest import local_root, runtime, runtimes  # noqa: F401  (real processes)
from tests.store.conftest import db  # noqa: F401  (a migrated database per test)
