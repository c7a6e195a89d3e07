"""serverless-hpc: scientific and ML workloads as serverless functions, benchmarked against a VM."""

__version__ = "0.1.0"
