"""Home Assistant-free perception engine: frames, gate, prompts, parsing, rules and backends."""
