"""The Alembic history on this backend: one head, up from empty, every step down
and up again, and models that match the migrated schema (`alembic check`)."""

from pytest_alembic.tests import (  # noqa: F401
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)
