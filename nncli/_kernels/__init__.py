"""Cython kernels: the hot paths of training, each generic over float32/float64."""
