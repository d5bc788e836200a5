"""Benchmark harness: paired interleaved timing, FLOP counts, Markdown/JSON/PNG reports."""

from diffcore.bench.flops import count_flops
from diffcore.bench.report import Report, machine_info
from diffcore.bench.timing import PairedTiming, time_paired

__all__ = ["PairedTiming", "Report", "count_flops", "machine_info", "time_paired"]
