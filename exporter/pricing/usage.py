"""What one LLM call used, in the token kinds that price it.

Totals and their parts, as providers report them: ``input_tokens`` counts every input token, cached or not,
text or audio or image; ``cache_read_tokens`` is the part of them read from the prompt cache, and so on.
The field names are genai-prices' usage keys, so a ``TokenUsage`` means what the same usage means there.

Each token is billed once, as the most specific kind it belongs to. The disjoint kinds that add up to the
bill (``CostBreakdown``'s fields, in ``entry.py``) are::

    input             input - cache_read - cache_write - input_audio - input_image + cache_audio_read + cache_image_read
    cache_read        cache_read - cache_audio_read - cache_image_read
    cache_write       cache_write - cache_write_1h            (5-minute cache writes)
    cache_write_1h    cache_write_1h
    input_audio       input_audio - cache_audio_read          (uncached audio input)
    cache_audio_read  cache_audio_read
    input_image       input_image - cache_image_read          (uncached image input)
    cache_image_read  cache_image_read
    output            output - output_reasoning - output_audio - output_image
    output_reasoning  output_reasoning
    output_audio      output_audio
    output_image      output_image

Cache writes are taken to be text, and reasoning to be neither audio nor image: no provider reports audio or
image cache writes, or reasoning in audio. A part larger than its total is a wrong report; ``problem`` names it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from ..observations import token_kinds


# Not frozen: one is made per priced call, and a frozen dataclass's __init__ costs ~0.7 µs more (it sets each
# field through object.__setattr__). Treat it as a value all the same.
@dataclass(slots=True)
class TokenUsage:
    input_tokens: int = 0
    """All input tokens: uncached, cache reads, cache writes, audio and image."""
    output_tokens: int = 0
    """All output tokens: text, reasoning (thinking), audio and image."""
    cache_read_tokens: int = 0
    """The part of ``input_tokens`` read from the prompt cache (text, audio and image)."""
    cache_write_tokens: int = 0
    """The part of ``input_tokens`` written to the prompt cache, whatever its lifetime."""
    cache_write_1h_tokens: int = 0
    """The part of ``cache_write_tokens`` written with a 1-hour lifetime; the rest are 5-minute writes."""
    input_audio_tokens: int = 0
    """The part of ``input_tokens`` that is audio, cached or not."""
    cache_audio_read_tokens: int = 0
    """The audio part of ``cache_read_tokens`` (so also part of ``input_audio_tokens``)."""
    input_image_tokens: int = 0
    """The part of ``input_tokens`` that is images, cached or not."""
    cache_image_read_tokens: int = 0
    """The image part of ``cache_read_tokens`` (so also part of ``input_image_tokens``)."""
    output_reasoning_tokens: int = 0
    """The part of ``output_tokens`` spent on reasoning."""
    output_audio_tokens: int = 0
    """The part of ``output_tokens`` that is audio."""
    output_image_tokens: int = 0
    """The part of ``output_tokens`` that is images."""

    def split(self) -> tuple[int, ...] | None:
        """The tokens of each disjoint kind above (``KINDS`` without the fee per call), or ``None`` exactly when
        :meth:`problem` names one."""
        return token_kinds(
            self.input_tokens,
            self.output_tokens,
            self.cache_read_tokens,
            self.cache_write_tokens,
            self.cache_write_1h_tokens,
            self.input_audio_tokens,
            self.cache_audio_read_tokens,
            self.input_image_tokens,
            self.cache_image_read_tokens,
            self.output_reasoning_tokens,
            self.output_audio_tokens,
            self.output_image_tokens,
        )

    def problem(self) -> str | None:
        """Why these counts can't be one call's usage (a negative count, a part above its total), or ``None``."""
        for f in fields(self):
            value = getattr(self, f.name)
            if value < 0:
                return f"{f.name} is negative ({value})"
        parts = (
            ("input_tokens", ("cache_read_tokens", "cache_write_tokens", "input_audio_tokens", "input_image_tokens")),
            ("cache_write_tokens", ("cache_write_1h_tokens",)),
            ("cache_read_tokens", ("cache_audio_read_tokens", "cache_image_read_tokens")),
            ("input_audio_tokens", ("cache_audio_read_tokens",)),
            ("input_image_tokens", ("cache_image_read_tokens",)),
            ("output_tokens", ("output_reasoning_tokens", "output_audio_tokens", "output_image_tokens")),
        )
        for total, names in parts:
            # Cache reads of audio and images are in both cache_read and input_audio/input_image: count them once.
            shared = self.cache_audio_read_tokens + self.cache_image_read_tokens if total == "input_tokens" else 0
            used = sum(getattr(self, name) for name in names) - shared
            if used > getattr(self, total):
                return f"{' + '.join(names)} exceed {total} ({used} > {getattr(self, total)})"
        return None
