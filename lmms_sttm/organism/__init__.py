"""A small video LLM trained offline on procedural needle clips (the demo's model organism)."""
