"""Scenario templates (`<id>/manifest.yaml`) and the composer that installs them per village."""
