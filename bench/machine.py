"""What a benchmark ran on, printed with its figures so that they can be compared.

Two machines of the same size (cores, memory) can differ twofold in speed: a figure is only
comparable with one measured on the same machine, or next to the same speed index. The index
is the CPU time of one fixed piece of Python work (reading a usage event's JSON and its
timestamp, the inner loop of an event import), in microseconds: lower is faster.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import time

import orjson

EVENT = (
    b'{"id":"b1","customer":"cust0001","name":"api_call","timestamp":"2025-01-01T00:00:00Z",'
    b'"properties":{"tokens":1236,"model":"b"}}'
)
LOOPS = 100_000


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None
    return pages * size / 2**30


def speed_index() -> float:
    """CPU microseconds per event of the fixed work (median of 5 rounds)."""
    rounds = []
    for _ in range(5):
        began = time.process_time()
        for _ in range(LOOPS):
            event = orjson.loads(EVENT)
            datetime.datetime.fromisoformat(event["timestamp"])
        rounds.append((time.process_time() - began) / LOOPS * 1e6)
    return statistics.median(rounds)


def describe() -> str:
    """One line: CPU, cores, memory, the speed index and the load average now."""
    memory = memory_gib()
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"machine: {cpu_model()}, {os.cpu_count()} cores"
        + (f", {memory:.0f} GiB" if memory else "")
        + f"; speed index {speed_index():.2f} µs (lower is faster); load average {load}"
    )
