"""Vision backends: the protocol, the error tree and the implementations."""
