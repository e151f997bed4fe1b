"""The data plane: segment schema, codec, on-disk segment log, replay storage and samplers."""
