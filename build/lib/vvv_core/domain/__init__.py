"""Pure domain logic: plain values in, verdicts out. No Kafka, no SQLite, no HTTP."""
