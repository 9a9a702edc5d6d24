"""Chatsite's load benchmark (`./run bench`): see bench/runner.py."""
