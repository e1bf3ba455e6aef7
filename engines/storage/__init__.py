"""Where vectors are kept: the on-disk cache, Chroma collections, exported datasets."""
