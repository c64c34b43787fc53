"""Items service: one FastAPI app on SQLite, PostgreSQL or MySQL/MariaDB."""
