"""Prefect orchestration for preserve: thin flows whose tasks call the library."""
