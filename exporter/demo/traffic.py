"""The demo's traffic: simulated users calling the chat service over HTTP, at a steady average rate.

Arrivals are Poisson (``rps`` on average), 40 % of the calls stream, some users rate the answer.
After ``shift_after`` seconds users start pasting long documents and complain more, which shifts the
prompt-size and intent distributions: what the drift detector is there to notice.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

MAX_IN_FLIGHT = 256  # beyond this the service is too slow for the rate; skip rather than pile up
GRACE = 5.0  # seconds calls in flight get to end when the demo stops
STREAM_SHARE = 0.4
FEEDBACK_SHARE = 0.15

SYSTEM = "You are the assistant of a hair salon. Answer briefly and politely."
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
SERVICES = ("haircut", "colour treatment", "beard trim", "blow dry", "perm")
TEMPLATES: dict[str, tuple[str, ...]] = {
    "booking": (
        "Can I book an appointment for {day} at {hour}?",
        "I would like to schedule a {service} next {day}.",
        "Is it possible to reserve a slot on {day} morning?",
    ),
    "pricing": ("How much does a {service} cost?", "What is the price of a {service}?", "Could I get a quote?"),
    "opening_hours": ("What are your opening hours on {day}?", "Are you open on {day} evening?"),
    "cancellation": ("I need to cancel my visit on {day}.", "How do I get a refund for my {service}?"),
    "complaint": ("The {service} last {day} was terrible.", "Something went wrong with my {service}."),
    "general": ("Hi there!", "Do you have parking nearby?", "Who will I be talking to?", "Thanks for the help."),
}
# Intent mix before and after the shift.
MIX_BEFORE = {"booking": 0.3, "pricing": 0.2, "opening_hours": 0.15, "cancellation": 0.1, "complaint": 0.05,
              "general": 0.2}  # fmt: skip
MIX_AFTER = {"booking": 0.15, "pricing": 0.1, "opening_hours": 0.05, "cancellation": 0.15, "complaint": 0.2,
             "general": 0.35}  # fmt: skip
# Words for pasted documents; none of them is an intent keyword, so the question still decides the intent.
FILLER = (
    "the email thread from last week mentions several details about my visit including the stylist "
    "my usual products the colour number the parking ticket and a note from my partner about the invoice "
    "which i attach below together with the photos and the previous conversation with your colleague"
).split()


@dataclass
class Stats:
    """Counts of the completion calls (``sent`` = answered + ``failed`` + cancelled) and, apart from
    them, of the feedback posts."""

    sent: int = 0
    streamed: int = 0
    failed: int = 0  # no HTTP answer (connection error, timeout)
    skipped: int = 0  # not sent: too many calls already in flight
    feedback: int = 0  # ratings the service accepted (202)
    feedback_failed: int = 0  # ratings refused or without answer
    statuses: Counter[int] = field(default_factory=Counter)

    @property
    def cancelled(self) -> int:
        """Calls still in flight when the demo stopped."""
        return self.sent - sum(self.statuses.values()) - self.failed


class Traffic:
    def __init__(
        self,
        base_url: str,
        models: list[tuple[str, float]],
        *,
        rps: float,
        shift_after: float,
        seed: int | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url
        self.transport = transport  # None: HTTP over the network; tests call the app in process
        self.model_names = [m for m, _ in models]
        self.model_weights = [w for _, w in models]
        self.rps = rps
        self.shift_after = shift_after
        self.rng = random.Random(seed)
        self.stats = Stats()
        self.shifted = False

    def messages(self) -> list[dict[str, str]]:
        rng = self.rng
        mix = MIX_AFTER if self.shifted else MIX_BEFORE
        intent = rng.choices(list(mix), list(mix.values()))[0]
        question = rng.choice(TEMPLATES[intent]).format(
            day=rng.choice(DAYS), hour=f"{rng.randint(9, 17)}:00", service=rng.choice(SERVICES)
        )
        if self.shifted and rng.random() < 0.7:
            question = " ".join(rng.choices(FILLER, k=rng.randint(250, 1200))) + "\n\n" + question
        history: list[dict[str, str]] = []
        for _ in range(rng.randint(0, 3)):
            history.append({"role": "user", "content": rng.choice(TEMPLATES["general"])})
            history.append({"role": "assistant", "content": "Of course, happy to help."})
        return [{"role": "system", "content": SYSTEM}, *history, {"role": "user", "content": question}]

    async def run(self, stop: asyncio.Event, hurry: asyncio.Event | None = None) -> None:
        """Send calls until ``stop`` is set; then let the ones in flight end (at most ``GRACE`` seconds,
        or until ``hurry`` is set) and cancel the rest."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        tasks: set[asyncio.Task[None]] = set()
        limits = httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=64)
        client = httpx.AsyncClient(base_url=self.base_url, timeout=120.0, limits=limits, transport=self.transport)
        async with client:
            next_at = loop.time()
            while not stop.is_set():
                self.shifted = loop.time() - started >= self.shift_after
                if len(tasks) < MAX_IN_FLIGHT:
                    task = asyncio.create_task(self._one(client))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                else:
                    self.stats.skipped += 1
                next_at += self.rng.expovariate(self.rps)
                try:
                    await asyncio.wait_for(stop.wait(), max(0.0, next_at - loop.time()))
                except TimeoutError:
                    pass
            hurried = asyncio.ensure_future((hurry or asyncio.Event()).wait())
            deadline = loop.time() + GRACE
            while tasks and not hurried.done() and loop.time() < deadline:
                waiting: set[asyncio.Future[Any]] = {*tasks, hurried}
                await asyncio.wait(waiting, timeout=deadline - loop.time(), return_when=asyncio.FIRST_COMPLETED)
            hurried.cancel()
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _one(self, client: httpx.AsyncClient) -> None:
        rng = self.rng
        model = rng.choices(self.model_names, self.model_weights)[0]
        stream = rng.random() < STREAM_SHARE
        body: dict[str, Any] = {"model": model, "messages": self.messages()}
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        self.stats.sent += 1
        try:
            if stream:
                self.stats.streamed += 1
                async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                    async for _ in response.aiter_raw():
                        pass
            else:
                response = await client.post("/v1/chat/completions", json=body)
        except httpx.HTTPError:
            self.stats.failed += 1
            return
        self.stats.statuses[response.status_code] += 1
        if response.status_code == 200 and rng.random() < FEEDBACK_SHARE:
            # Unhappier users after the shift: their long questions get worse answers.
            weights = (1, 2, 4, 6, 4) if self.shifted else (1, 1, 2, 6, 8)
            rating = rng.choices((1, 2, 3, 4, 5), weights)[0]
            try:
                answer = await client.post("/v1/feedback", json={"model": model, "rating": rating})
            except httpx.HTTPError:
                self.stats.feedback_failed += 1
                return
            if answer.status_code == 202:
                self.stats.feedback += 1
            else:
                self.stats.feedback_failed += 1
