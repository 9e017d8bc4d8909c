"""Real servers on loopback for the tests and the benchmarks: llama.cpp's servers, HAProxy, free ports."""
