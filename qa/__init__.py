"""Grounded answers over the index: retrieval, the LLM, citations and abstention. Imports `index`, never `ui`."""
