"""The risk engine: pure, synchronous decisions over the in-memory book (no I/O, no protobuf)."""
