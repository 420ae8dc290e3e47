"""Protocol definitions written from ../shared/facts, and the stubs generated from them.

The ``.proto`` files are the source; ``python -m protos.build`` regenerates the
``*_pb2*.py`` stubs (never edit those by hand; they are not committed).
"""
