"""Getting data in: ingestion, honest splits, leakage checks, the simulated survey and the LR protocol."""
