"""reprolab: spring-2025 ML papers as working PyTorch software, each with a laptop-scale reproduction."""

__version__ = "0.1.0"
