"""Routing: confidence scorers, policies, decisions and the generic confidence gate."""
