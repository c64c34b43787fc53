"""The connections every process of the service may open, against the server's limits."""

from dataclasses import dataclass

from service.check.findings import Finding
from service.db.backends import Backend


@dataclass(frozen=True, order=True)
class Limit:
    connections: int
    meaning: str
    setting: str


def connection_budget(backend: Backend, limits: list[Limit], open_now: int) -> Finding:
    """The service's connections, all processes together, against the tightest server limit."""
    pool = backend.pool_limits()
    assert pool is not None
    workers = backend.settings.web_concurrency
    need = workers * sum(pool)
    tightest = min(limits)
    limit, limit_text = tightest.connections, tightest.meaning
    needed_text = (
        f"{workers} process(es) x {sum(pool)} (DB_POOL_SIZE {pool[0]} + DB_MAX_OVERFLOW "
        f"{pool[1]}) = {need} connections"
    )
    per_process = max(limit // workers, 1)
    fix = (
        f"keep DB_POOL_SIZE + DB_MAX_OVERFLOW at {per_process} or less per process "
        f"(or fewer WEB_CONCURRENCY processes), or raise {tightest.setting}"
    )
    if need > limit:
        return Finding("problem", f"{needed_text}, more than {limit_text} ({limit})", fix)
    if need + open_now > limit:
        return Finding(
            "warning",
            f"{needed_text} fit {limit_text} ({limit}), but not beside the {open_now} "
            "other connections open now",
            f"if those stay, {fix}",
        )
    return Finding(
        "ok", f"{needed_text} of {limit_text} ({limit}); {open_now} other connections open now"
    )
