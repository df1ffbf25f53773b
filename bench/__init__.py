"""Benchmarks: measured numbers behind the defaults (retrieval quality, ingest speed, chunk size)."""
