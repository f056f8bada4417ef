"""Malicious artefacts with harmless payloads: none may run."""
