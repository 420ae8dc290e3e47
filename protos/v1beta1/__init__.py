"""Generated-stub package (see protos/build.py)."""
