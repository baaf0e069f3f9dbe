"""Model directories: packaging and publishing (:mod:`registry.model.package`), manifests and
safe loading (:mod:`registry.model.safety`). Demo models live in :mod:`registry.dev.demo`."""
