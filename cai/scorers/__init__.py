"""Scorers for `cai evaluate`: toxicity, refusal, relevance, reward models."""
