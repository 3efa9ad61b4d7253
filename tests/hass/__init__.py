"""A real Home Assistant Core for tests: build.sh builds it, harness.py runs it (see README.md)."""
