"""One folder per paper; each registers its study and benchmark by name (see reprolab.study)."""
