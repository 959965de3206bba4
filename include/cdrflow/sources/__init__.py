"""Collectors: each one finds files at a source and hands their bytes to the registry."""
