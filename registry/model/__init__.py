"""Model directories: safe loading (:mod:`registry.model.safety`) and demo models (`demo`)."""
