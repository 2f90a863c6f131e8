"""Test double of pycuda (see tests/doubles/README.md). Only `pycuda.driver` is provided."""

VERSION = (2025, 1, 2)
VERSION_TEXT = "2025.1.2"
