"""veilface benchmarks: latency, accuracy, load."""
