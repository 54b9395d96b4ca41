"""Pricing benchmark (not a test).

Times the price of one call on the request path once the model is resolved (``PricingTable.price`` +
``PriceEntry.cost``; target <= 1 µs), next to genai-prices' own ``calc_price`` for the same call; a whole
priced call through ``Recorder.llm`` (metrics included), in fresh interpreters for this tree and, with
``--against``, another checkout (e.g. main before a change); the first resolution of a (provider, model);
what importing genai-prices and loading its data add at startup (fresh interpreters); and the memory the
resolved entries of 100 models take. Each time is the best of the rounds (as timeit reports it); import
times are the best of fresh processes.

    python bench/pricing.py [--rounds 7] [--number 200000] [--processes 5] [--against OTHER_TREE] [--instructions]

``--instructions`` also counts the CPU instructions of the first call through ``Recorder.llm`` under
``valgrind --tool=callgrind``, repeatable whatever else the machine is doing.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import time
import timeit
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from callgrind import per_unit  # noqa: E402
from genai_prices import Usage, calc_price  # noqa: E402
from genai_prices.data_snapshot import get_snapshot  # noqa: E402

from exporter.config import PricingConfig  # noqa: E402
from exporter.pricing import PricingTable, TokenUsage  # noqa: E402

# (model, provider, usage): a flat price, a long-context tier, and audio kinds.
CALLS = [
    ("gpt-4o-2024-08-06", "openai", TokenUsage(1_200, 350, cache_read_tokens=512)),
    (
        "claude-sonnet-4-5",
        "anthropic",
        TokenUsage(250_000, 4_000, cache_read_tokens=180_000, cache_write_tokens=20_000, cache_write_1h_tokens=5_000),
    ),
    (
        "gpt-realtime",
        "openai",
        TokenUsage(5_000, 3_000, cache_read_tokens=2_000, input_audio_tokens=3_000, cache_audio_read_tokens=1_500),
    ),
]
FIRST_SIGHT = [
    ("gpt-4o", "openai"),
    ("gpt-5.2", None),
    ("claude-sonnet-4-5-20250929", "anthropic"),
    ("gemini-2.5-pro", "gcp.gemini"),
    ("gpt-realtime", None),
    ("qwen/qwen3-coder-flash", "openrouter"),
    ("us.anthropic.claude-3-haiku-20240307-v1:0", "aws.bedrock"),
    ("acme-unknown-7b", None),
]


def best_us(stmt: str, namespace: dict[str, object], rounds: int, number: int) -> float:
    return min(timeit.repeat(stmt, globals=namespace, repeat=rounds, number=number)) / number * 1e6


def fresh_process(code: str, processes: int) -> float:
    """Best wall time (ms) of ``code`` in fresh interpreters, which print their own perf_counter delta."""
    times = []
    for _ in range(processes):
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env={"PYTHONPATH": str(ROOT)},
        )
        times.append(float(out.stdout))
    return min(times)


# One priced call through Recorder.llm, in the vocabulary every tree has (totals and cache reads), then, where the
# tree knows them, a call with cache writes and reasoning, and one whose answer had no usage.
RECORDER_CALLS = """
import sys, timeit
from prometheus_client import CollectorRegistry
from exporter import Config, LLMCall, Recorder
rec = Recorder(Config(), CollectorRegistry())
calls = {"gpt-4o, cache reads": LLMCall("gpt-4o-2024-08-06", "openai", input_tokens=1200, output_tokens=350,
                                        cached_input_tokens=512, duration=1.0)}
if "cache_write_tokens" in LLMCall.FIELDS:
    calls["claude, 5 kinds"] = LLMCall("claude-sonnet-4-5", "anthropic", input_tokens=12600, output_tokens=427,
        cached_input_tokens=10240, cache_write_tokens=2048, cache_write_1h_tokens=512, output_reasoning_tokens=100,
        duration=1.0, response_model="claude-sonnet-4-5-20250929")
    calls["no usage (missing)"] = LLMCall("gpt-4o", "openai", duration=1.0, missing_usage="stream_without_usage")
for name, call in calls.items():
    rec.llm(call)  # label children, the price entry
    best = min(timeit.repeat(lambda: rec.llm(call), repeat=int(sys.argv[1]), number=int(sys.argv[2])))
    print(f"{name}\t{best / int(sys.argv[2]) * 1e6:.3f}")
"""


INSTRUCTION_PROBE = """
import sys
from prometheus_client import CollectorRegistry
from exporter import Config, LLMCall, Recorder
rec = Recorder(Config(), CollectorRegistry())
call = LLMCall("gpt-4o-2024-08-06", "openai", input_tokens=1200, output_tokens=350, cached_input_tokens=512,
               duration=1.0)
rec.llm(call)
for _ in range(int(sys.argv[1])):
    rec.llm(call)
"""


def recorder_instructions(tree: Path, calls: int = 2000) -> float:
    """Instructions per ``Recorder.llm`` of the first call of RECORDER_CALLS in ``tree`` (two runs' difference)."""
    return per_unit(lambda n: ["-c", INSTRUCTION_PROBE, str(n)], calls, env={"PYTHONPATH": str(tree)}, cwd=tree)


def recorder_llm(trees: list[Path], rounds: int, number: int) -> None:
    """Recorder.llm per call (µs) in each tree: fresh interpreters, alternating, best of ``rounds``."""
    best: dict[tuple[Path, str], float] = {}
    for _ in range(rounds):
        for tree in trees:
            out = subprocess.run(
                [sys.executable, "-c", RECORDER_CALLS, "1", str(number)],
                capture_output=True,
                text=True,
                check=True,
                cwd=tree,
                env={"PYTHONPATH": str(tree)},
            ).stdout
            for line in out.splitlines():
                name, us = line.split("\t")
                best[(tree, name)] = min(best.get((tree, name), float("inf")), float(us))
    names = list(dict.fromkeys(name for _, name in best))
    print(f"\nRecorder.llm per call (µs, best of {rounds} fresh interpreters per tree):")
    print(f"  {'call':22}" + "".join(f" {str(t)[-24:]:>24}" for t in trees))
    for name in names:
        cells = [f"{best[(t, name)]:24.3f}" if (t, name) in best else f"{'-':>24}" for t in trees]
        print(f"  {name:22} " + " ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--number", type=int, default=200_000)
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--against", type=Path, help="another checkout to time Recorder.llm in, e.g. main")
    parser.add_argument("--instructions", action="store_true", help="count Recorder.llm's instructions too")
    args = parser.parse_args()
    table = PricingTable.from_config(PricingConfig())
    print(f"price data: {table.source}, snapshot {table.snapshot_date}, {table.model_count} models")

    print("\nper priced call, resolved model (µs, best of rounds):")
    print(f"  {'model':28} {'price+cost':>10} {'price()':>8} {'cost()':>7} {'amounts':>7} {'calc_price':>10}")
    for model, provider, usage in CALLS:
        entry = table.price(model, provider)
        assert entry is not None
        ns = {"table": table, "entry": entry, "usage": usage, "model": model, "provider": provider}
        both = best_us("table.price(model, provider).cost(usage)", ns, args.rounds, args.number)
        price = best_us("table.price(model, provider)", ns, args.rounds, args.number)
        cost = best_us("entry.cost(usage)", ns, args.rounds, args.number)
        counts = usage.split()
        ns["counts"] = counts
        amounts = best_us("table.price(model, provider).amounts(counts)", ns, args.rounds, args.number)
        values = dataclasses.asdict(usage)
        values["cache_write_5m_tokens"] = usage.cache_write_tokens - usage.cache_write_1h_tokens
        ns["genai_usage"] = Usage(**values)
        ns["calc_price"] = calc_price
        reference = best_us("calc_price(genai_usage, model, provider_id=provider)", ns, 3, 2_000)
        print(f"  {model:28} {both:10.3f} {price:8.3f} {cost:7.3f} {amounts:7.3f} {reference:10.1f}")
    ns = {"TokenUsage": TokenUsage}
    make = best_us("TokenUsage(1200, 350, cache_read_tokens=512)", ns, args.rounds, args.number)
    print(f"  (making the TokenUsage, the caller's part: {make:.3f} µs)")

    trees = [ROOT, *([args.against.resolve()] if args.against else [])]
    recorder_llm(trees, args.rounds, args.number // 10)
    if args.instructions:
        counts = "   ".join(f"{tree}: {recorder_instructions(tree):.0f}" for tree in trees)
        print(f"  instructions per call (gpt-4o, cache reads): {counts}")

    print("\nfirst resolution of a (provider, model) (µs, best of rounds):")
    for model, provider in FIRST_SIGHT:
        times = []
        for _ in range(args.rounds):
            table._cache.clear()
            start = time.perf_counter()
            entry = table.price(model, provider)
            times.append((time.perf_counter() - start) * 1e6)
        print(f"  {model:45} {provider or '-':12} {min(times):8.1f}  -> {entry.model if entry else 'no price'}")

    # The resolved entries of 100 models, as a recorder that has seen them holds them.
    models = [(p.id, m.id) for p in get_snapshot().providers for m in p.models][::20][:100]
    memory_table = PricingTable.from_config(PricingConfig())
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for provider_id, model_id in models:
        memory_table.price(model_id, provider_id)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    priced = sum(1 for key in memory_table._cache if memory_table._cache[key] is not None)
    each = grown / len(models)
    print(f"\nmemory of {len(models)} resolved models ({priced} priced): {grown / 1024:.1f} KiB, {each:.0f} B each")

    print(f"\nstartup, fresh interpreters (ms, best of {args.processes}):")
    timer = "import time; t = time.perf_counter(); {}; print((time.perf_counter() - t) * 1e3)"
    base = fresh_process(timer.format("import exporter"), args.processes)
    genai = fresh_process(timer.format("import genai_prices"), args.processes)
    data = fresh_process(
        "import time, genai_prices.data_snapshot as d; t = time.perf_counter(); d.get_snapshot(); "
        "print((time.perf_counter() - t) * 1e3)",
        args.processes,
    )
    build = fresh_process(
        "import time; from exporter.config import PricingConfig; from exporter.pricing import PricingTable; "
        "t = time.perf_counter(); PricingTable.from_config(PricingConfig()); print((time.perf_counter() - t) * 1e3)",
        args.processes,
    )
    pricing = fresh_process(timer.format("import exporter.pricing"), args.processes)
    print(f"  import exporter (does not import genai-prices):   {base:7.1f}")
    print(f"  import genai_prices (pydantic, httpx2):           {genai:7.1f}")
    print(f"  loading its bundled data (first get_snapshot):    {data:7.1f}")
    print(f"  import exporter.pricing (with genai-prices):      {pricing:7.1f}")
    print(f"  PricingTable.from_config (data, files, aliases):  {build:7.1f}")
    print(f"  genai-prices' share, import + data:               {genai + data:7.1f}")


if __name__ == "__main__":
    main()
