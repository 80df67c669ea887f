"""Banks train a card-fraud detector with Flower, monitored by flmon."""
