"""The training entry point (`recipes/r1_zero.py`, installed as `r1-train`), its YAML presets and launcher configs."""
