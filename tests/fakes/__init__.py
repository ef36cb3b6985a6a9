"""Test doubles shared by the test suites and the benchmarks (e.g. the fake OpenAI server)."""
