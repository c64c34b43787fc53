"""`python -m service`: migrate the schema (unless MIGRATE_ON_START is off), then serve."""

import logging
import sys

import uvicorn
from sqlalchemy import exc

from service.database import DatabaseURLError, create_engine, parse_database_url, safe_url
from service.migrations import upgrade_to_head
from service.settings import Settings

logger = logging.getLogger("service")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(name)s: %(message)s")
    settings = Settings()
    try:
        url = parse_database_url(settings.database_url.get_secret_value())
        if settings.migrate_on_start:
            engine = create_engine(url, settings)
            try:
                upgrade_to_head(engine)
            finally:
                engine.dispose()
    except DatabaseURLError as error:
        sys.exit(f"error: {error}")
    except exc.OperationalError as error:
        sys.exit(f"error: cannot migrate the database at {safe_url(url)}: {error.orig}".strip())
    logger.info("Serving on %s with database %s", f"{settings.host}:{settings.port}", safe_url(url))
    uvicorn.run(
        "service.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.web_concurrency,
        access_log=settings.access_log,
    )


if __name__ == "__main__":
    main()
