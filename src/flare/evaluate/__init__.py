"""Functions over manifests and trained models: metrics, the benchmark, features, out-of-domain scoring."""
