"""Benchmarks: pyperf benchmarks of each kernel (``kernels``) and the speed suite that sets
dense and LSH side by side (``speed``)."""
