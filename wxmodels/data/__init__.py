"""Reading sources, mapping them to the canonical schema, validating and storing them."""
