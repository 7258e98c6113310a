"""The speed benchmark behind `python -m src.bench`: measurements, the naive baseline, the report."""
