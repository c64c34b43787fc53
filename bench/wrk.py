"""Load with wrk, and the numbers read back from its report."""

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

LUA = Path(__file__).resolve().parent / "lua"
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass
class Endpoint:
    name: str
    path: str
    script: str | None = None
    # wrk passes these to the script's init(); "{first}" and "{last}" are the seeded ids.
    args: tuple[str, ...] = ()

    @property
    def of_orders(self) -> bool:
        return self.path.startswith("/orders/")


ENDPOINTS = (
    Endpoint("get-one", "/items/1", "get_one.lua", ("{first}", "{last}")),
    Endpoint("list-100", "/items/?limit=100"),
    Endpoint("search", "/items/?q={q}&limit=100"),
    Endpoint("create", "/items/", "create.lua"),
    Endpoint("patch", "/items/1", "patch.lua", ("{first}", "{last}")),
    # A PATCH that changes the name, which the trigram index must follow.
    Endpoint("rename", "/items/1", "rename.lua", ("{first}", "{last}")),
)
# The second resource's reads, which take the same paths through the data layer.
ORDER_ENDPOINTS = (
    Endpoint("order-get-one", "/orders/1", "get_one.lua", ("{first_order}", "{last_order}",
                                                           "/orders/")),
    Endpoint("order-list-100", "/orders/?limit=100"),
)  # fmt: skip


@dataclass
class Result:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int
    p90_ms: float = 0.0
    p999_ms: float = 0.0


def _milliseconds(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def parse(report: str) -> Result:
    def find(pattern: str) -> str:
        match = re.search(pattern, report)
        if match is None:
            raise ValueError(f"wrk report without {pattern!r}:\n{report}")
        return match.group(1)

    # Written by PERCENTILES, in microseconds.
    exact = {float(p): int(us) / 1000 for p, us in re.findall(r"percentile (\S+) (\d+)", report)}
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", report)
    socket = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", report
    )
    return Result(
        requests_per_second=float(find(r"Requests/sec:\s+([\d.]+)")),
        p50_ms=_milliseconds(find(r"\n\s+50%\s+(\S+)")),
        p99_ms=_milliseconds(find(r"\n\s+99%\s+(\S+)")),
        requests=int(find(r"(\d+) requests in")),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(map(int, socket.groups())) if socket else 0,
        p90_ms=exact.get(90.0, 0.0),
        p999_ms=exact.get(99.9, 0.0),
    )


# Appended to every script: the percentiles wrk's report leaves out (p99.9).
PERCENTILES = """
function done(summary, latency, requests)
  for _, p in ipairs({50, 90, 99, 99.9}) do
    io.write(string.format("percentile %g %d\\n", p, latency:percentile(p)))
  end
end
"""


def run(
    base: str, endpoint: Endpoint, values: dict[str, str], duration: int, connections: int
) -> tuple[Result, str]:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s"]
    script = (LUA / endpoint.script).read_text() if endpoint.script else ""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as composed:
        composed.write(script + PERCENTILES)
        composed.flush()
        command += ["-s", composed.name, base + endpoint.path.format(**values)]
        if endpoint.args:
            command += ["--", *(arg.format(**values) for arg in endpoint.args)]
        report = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return parse(report), report
