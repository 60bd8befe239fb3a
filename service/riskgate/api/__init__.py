"""gRPC edge: thin servicers translating protobuf <-> engine types, plus auth and health."""
