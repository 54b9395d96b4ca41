"""Prices per model and the cost of an LLM call: genai-prices' data, with the user's prices on top."""

from .entry import KINDS, CostBreakdown, PriceEntry
from .report import describe_price, format_table
from .table import CACHE_SIZE, SHIPPED, PricingTable
from .usage import TokenUsage

__all__ = [
    "CACHE_SIZE",
    "KINDS",
    "SHIPPED",
    "CostBreakdown",
    "PriceEntry",
    "PricingTable",
    "TokenUsage",
    "describe_price",
    "format_table",
]
