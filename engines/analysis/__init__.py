"""What is computed over an index's vectors: duplicates (and their verification), the map, explanations."""
