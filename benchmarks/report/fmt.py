"""Number formats and the line that says where and how a result was measured."""

from __future__ import annotations

# Cores that other processes may keep busy (on average) for a run to count as alone.
IDLE_CORES = 0.1


def ms(value: float) -> str:
    return f"{value:.2f} ms"


def pct(fraction: float, digits: int = 1) -> str:
    return f"{100 * fraction:.{digits}f} %"


def times(ratio: float) -> str:
    return f"{ratio:.2f}x"


def count(value: float) -> str:
    return f"{value:,.0f}"


def mb(value: float) -> str:
    return f"{value:.0f} MB"


def span(values: list[float], unit: str = "") -> str:
    """'a' when all are equal at this precision, else 'a-b' (smallest to largest)."""
    low, high = count(min(values)), count(max(values))
    return f"{low}{unit}" if low == high else f"{low}-{high}{unit}"


def conditions(meta: dict) -> str:
    """One sentence: when, at which commit, on what, with how many threads, how busy."""
    commit = f"`{meta['commit']}`" + (" with uncommitted changes" if meta["dirty"] else "")
    threads = ", ".join(f"{name} {value}" for name, value in meta["threads"].items())
    start, end = meta["load_average_start"][0], meta["load_average_end"][0]
    others = meta.get("other_processes_cores")
    if others is None:
        busy = (f"1-minute load average {start:.2f} at the start and {end:.2f} at the end")
    elif others < IDLE_CORES:
        busy = (f"nothing else ran (other processes kept {others:.2f} cores busy on average; "
                f"1-minute load average {start:.2f} at the start, {end:.2f} at the end)")
    else:
        busy = (f"shared machine: other processes kept {others:.2f} cores busy on average "
                f"(1-minute load average {start:.2f} at the start, {end:.2f} at the end), so "
                "absolute times are not clean")
    return (f"*Measured {meta['date'][:10]} at commit {commit} on {meta['cpu_model']} "
            f"({meta['cores']} cores; threads: {threads}); {busy}. "
            f"torch {meta['versions']['torch']}, onnxruntime {meta['versions']['onnxruntime']}.*")


def earlier_rows(rows: list[dict], name: str) -> str:
    """The sentence that names the ``rows`` kept from an earlier run of their benchmark (those
    with their own meta; ``name`` is the key that names a row), or "" when there are none."""
    earlier = [row for row in rows if "meta" in row]
    if not earlier:
        return ""
    return " Rows from an earlier run: " + "; ".join(
        f"`{row[name]}` {row['meta']['date'][:10]} at `{row['meta']['commit']}`"
        for row in earlier) + "."
