"""Building blocks used by two or more papers (tiny GPT, ...). Imports nothing from papers/."""
