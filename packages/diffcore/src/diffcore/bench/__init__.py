"""Benchmark harness: paired interleaved timing, FLOP counts, Markdown/JSON/PNG reports."""

from diffcore.bench.flops import count_flops
from diffcore.bench.report import Goal, Report, format_table, machine_info
from diffcore.bench.timing import PairedTiming, time_paired

__all__ = ["Goal", "PairedTiming", "Report", "count_flops", "format_table", "machine_info", "time_paired"]
