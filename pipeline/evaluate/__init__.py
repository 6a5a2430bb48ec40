"""Measuring the results: metrics and their definitions, the report and the results page."""
