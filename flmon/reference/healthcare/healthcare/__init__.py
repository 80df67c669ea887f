"""Hospitals train a breast-cancer diagnostic model with Flower, monitored by flmon."""
