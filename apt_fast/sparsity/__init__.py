"""Sparse weights: the packed formats of pruned nn.Linear weights (formats/) that the sparse matmul op families
(bitmap_linear, nm_linear, block_linear) read."""
