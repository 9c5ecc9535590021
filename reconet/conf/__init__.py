"""Hydra configuration for ``reconet-train`` (found with ``initialize_config_module("reconet.conf")``)."""
