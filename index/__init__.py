"""Documents in, a Chroma + BM25 index out. Imports neither `qa` nor `ui`."""
