"""What a gallery is made of: items, folder listings, datasets, sources, decoding, photo headers."""
