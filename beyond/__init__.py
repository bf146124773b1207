"""Beyond the assignment: beam search, spelling your own words, error analysis, the strongest-model
study, input feeding, length bucketing and the benches. Each module runs as python -m beyond.NAME
from the repository root; they import the course files, which never import them."""
import importlib

q2 = importlib.import_module("hw2-q2")
q3 = importlib.import_module("hw2-q3")
