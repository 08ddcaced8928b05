"""Ground modules: errors, name registries, atomic writes and the checkpoint file format.

Every layer may import them; they import nothing of synth's outside this package.
"""
