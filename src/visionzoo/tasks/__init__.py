"""Tasks: preprocess -> forward -> postprocess for each job (classify now; detect, segment later)."""
