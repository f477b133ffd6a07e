"""The HTML report: renders what the stages and the benchmark wrote; computes nothing of its own."""
