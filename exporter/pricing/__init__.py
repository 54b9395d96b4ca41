"""Prices per model and the cost of an LLM call."""

from .table import CACHE_SIZE, SHIPPED, PricingTable, format_table

__all__ = ["CACHE_SIZE", "SHIPPED", "PricingTable", "format_table"]
