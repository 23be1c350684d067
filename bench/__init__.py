"""Benchmarks of the real pipeline (`make bench`) and of the decoder (`bench.decode_speed`)."""
