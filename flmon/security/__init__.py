"""Security and privacy signals: poisoning indicators and differential-privacy budget."""
