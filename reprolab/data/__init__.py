"""Data used by two or more papers. Imports nothing from papers/."""
