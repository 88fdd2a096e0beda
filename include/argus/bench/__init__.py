"""Benchmarks (``argus bench ...``): JSON out, ratios measured side by side in one run."""
