"""anchorml registry SDK: chain access, contract clients, content store, model packaging."""

__version__ = "0.1.0"
